"""Texts in the making, one character per step: Model.generation makes one, Model.batch steps
many together (what `charnn serve` runs: each step reads one character into every stream).

A generation with an rng_seed reads through its own single-stream reader, exactly as
`Model.sample` does, so its text is Model.sample's, character for character, whatever else
the batch holds; the others share one batched product per weight and step.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from charnn.data.vocab import from_symbols, to_symbols
from charnn.errors import CharnnError, ParameterError


@dataclass
class Piece:
    """What one step of a generation made: a character, with its log-probability and, when asked,
    the likeliest characters at that point. `prompt` pieces are the prompt's own characters (read,
    not made), reported for echo.

    Examples:
        >>> piece = next(iter(model.generation("h", length=1, greedy=True, logprobs=1).run()))
        >>> piece.text, list(piece.top) == [piece.text], piece.logprob < 0
        ('e', True, True)
    """

    text: str  # the text this step adds (in bytes mode: "" until a character's bytes are complete)
    logprob: float | None  # ln p of this character under the model (None: the first prompt character)
    top: dict[str, float] = field(default_factory=dict)  # character -> ln p, the likeliest `logprobs` of them
    prompt: bool = False


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = z - z.max()
    return z - math.log(float(np.exp(z).sum()))


class Generation:
    """One text being made from a prompt, a step at a time (Model.generation makes one).

    Examples:
        >>> g = model.generation("h", length=4, greedy=True)
        >>> "".join(p.text for p in g.run())
        'ello'
    """

    def __init__(self, model, prompt: str, *, length: int, temperature: float, top_k: int, top_p: float,
                 greedy: bool, rng_seed: int | None, logprobs: int, echo: bool):
        from charnn.nn import sampling

        sampling.check_options(length, temperature, top_k, greedy, top_p)
        if logprobs < 0:
            raise ParameterError("{logprobs} must be >= 0 (got {got})", got=logprobs)
        self.model, self.encoding = model, model.config.data.encoding
        vocab = model.vocab
        symbols, self.mapped = vocab.map_rare(to_symbols(prompt, self.encoding))
        unknown = vocab.unknown_chars(symbols)
        if unknown:
            raise ParameterError("{prompt} has characters outside the model's vocabulary: {chars}; use only characters "
                                 "from its training text", chars=", ".join(map(repr, unknown)))
        self.settings = dict(temperature=temperature, top_k=top_k, greedy=greedy, top_p=top_p)
        self.rng = np.random.default_rng(rng_seed)
        self.exact = rng_seed is not None
        self.logprobs, self.echo = logprobs, echo
        ids, shown = sampling.start(vocab, symbols, length, greedy, self.rng, model._ckpt.char_counts)
        self.remaining = length - (shown is not None)
        self.first = shown  # a first character that is part of the text (a seedless start without line breaks)
        self.to_read = deque(ids)
        self.prompt_ids = [int(i) for i in vocab.encode(symbols)] if symbols else []
        self.prompt_logprob = None  # ln p of the next prompt character, from the last step
        self.next_id = self.to_read.popleft() if self.to_read else None
        self.decoder = None if self.encoding == "utf-8" else _decoder()
        self.reader = sampling.Reader(model.params, model.cell) if self.exact or model.cell == "mlp" else None
        self.row: int | None = None  # its row in a Batch's shared reader

    @property
    def done(self) -> bool:
        return self.next_id is None or (self.remaining <= 0 and not self.to_read)

    def opening(self) -> list[Piece]:
        """The pieces before the first step: the echoed prompt's first character, and a first
        character drawn by the text's frequencies (a seedless start without line breaks)."""
        out = []
        if self.echo and self.prompt_ids:
            out.append(Piece(self._text(self.prompt_ids[0]), None, prompt=True))
        if self.first is not None:
            out.append(Piece(self._text(self.first), None))
        return out

    @property
    def reading_prompt(self) -> bool:
        """The next step reads a prompt character whose successor is the prompt's too (nothing is drawn)."""
        return bool(self.to_read)

    def advance(self, logits: np.ndarray, chosen: int | None = None) -> Piece | None:
        """Take the logits of the character just read: the next prompt character (echoed, or None),
        or a new character drawn from them (or `chosen`, drawn by the caller with this generation's
        rng, as a Batch does for many at once)."""
        from charnn.nn.sampling import choose

        if self.to_read:  # still reading the prompt
            self.next_id = self.to_read.popleft()
            if not self.echo:
                return None
            return self._piece(self.next_id, logits, prompt=True)
        if chosen is None:
            chosen = choose(logits, rng=self.rng, **self.settings)
        self.remaining -= 1
        self.next_id = chosen if self.remaining > 0 else None
        piece = self._piece(chosen, logits)
        if self.next_id is None and self.decoder is not None:
            piece.text += self.decoder.decode(b"", final=True)
        return piece

    def step(self) -> Piece | None:
        """Read one character with the generation's own reader (a lone generation)."""
        from charnn.nn.sampling import Reader

        if self.reader is None:
            self.reader = Reader(self.model.params, self.model.cell)
        return self.advance(self.reader.logits(self.next_id))

    def run(self):
        """Every piece to the end: the opening pieces, then one per step."""
        yield from self.opening()
        while not self.done:
            piece = self.step()
            if piece is not None:
                yield piece

    def _piece(self, char_id: int, logits: np.ndarray, prompt: bool = False) -> Piece:
        if not self.logprobs:
            return Piece(self._text(char_id), None, prompt=prompt)
        lp = log_softmax(logits)
        chars = self.model.vocab.chars
        top = np.argsort(-lp, kind="stable")[: self.logprobs]
        return Piece(self._text(char_id), float(lp[char_id]), {chars[i]: float(lp[i]) for i in top}, prompt=prompt)

    def _text(self, char_id: int) -> str:
        symbol = self.model.vocab.chars[char_id]
        return symbol if self.decoder is None else self.decoder.decode(from_symbols(symbol, self.encoding))


def _drawn(rows: list, logits: np.ndarray) -> np.ndarray:
    """The characters the shared rows draw this step, all at once (-1 for a row still reading its prompt)."""
    from charnn.nn.sampling import choose_rows

    drawing = np.array([not g.reading_prompt for g in rows])
    chosen = np.full(len(rows), -1)
    if drawing.any():
        picked = [g for g, d in zip(rows, drawing) if d]
        settings = {k: np.array([g.settings[k] for g in picked]) for k in ("temperature", "top_k", "top_p", "greedy")}
        u = np.array([0.0 if g.settings["greedy"] else g.rng.random() for g in picked])
        chosen[drawing] = choose_rows(logits[drawing], u=u, **settings)
    return chosen


def _decoder():
    import codecs

    return codecs.getincrementaldecoder("utf-8")(errors="replace")


class Batch:
    """Generations of one model stepped together: each step reads one character into every live
    generation (prompt characters first, then the characters it draws); generations join and
    leave between steps (Model.batch makes one).

    Examples:
        >>> batch = model.batch()
        >>> a, b = model.generation("h", length=4, greedy=True), model.generation("he", length=3, greedy=True)
        >>> batch.add(a); batch.add(b)
        >>> while batch.generations: _ = batch.step()
        >>> batch.size
        0
    """

    def __init__(self, model):
        from charnn.nn.sampling import BatchReader

        self.model = model
        self.shared = None if model.cell == "mlp" else BatchReader(model.params, model.cell)
        self.generations: list[Generation] = []
        self._by_row: list[Generation] = []

    @property
    def size(self) -> int:
        return len(self.generations)

    def add(self, generation: Generation) -> None:
        if generation.model is not self.model:
            raise CharnnError("a generation joins the batch of its own model")
        if generation.reader is None and self.shared is not None:
            generation.row = self.shared.add()
            self._by_row.append(generation)
        self.generations.append(generation)

    def remove(self, generation: Generation) -> None:
        self.generations.remove(generation)
        if generation.row is not None:
            moved = self.shared.remove(generation.row)
            last = self._by_row.pop()
            if moved is not None:
                last.row = generation.row
                self._by_row[generation.row] = last
            generation.row = None

    def step(self) -> list[tuple[Generation, Piece | None]]:
        """One character into every live generation: (generation, what it made) for each; a
        generation that is done leaves the batch."""
        for g in [g for g in self.generations if g.done]:  # e.g. one asked for no characters
            self.remove(g)
        out = []
        if self._by_row:
            rows = list(self._by_row)
            logits = self.shared.logits(np.array([g.next_id for g in rows], dtype=np.int64))
            chosen = _drawn(rows, logits)
            out += [(g, g.advance(logits[i], None if c < 0 else int(c))) for i, (g, c) in enumerate(zip(rows, chosen))]
        out += [(g, g.step()) for g in self.generations if g.row is None]
        for g in [g for g in self.generations if g.done]:
            self.remove(g)
        return out
