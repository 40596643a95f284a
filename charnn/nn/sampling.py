"""Generating text one character at a time from a trained model."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from charnn.nn import cells, fast
from charnn.nn import model
from charnn.errors import CharnnError, ParameterError
from charnn.data.vocab import Vocab


class Reader:
    """One stream of text read one character at a time, from a zero state: `logits(char_id)` reads
    a character and returns the next-character logits. The state lives here: each layer's cell
    state and the characters layer 0's encoder keeps (a window's last W - 1).

    kernels="fast" reads a float32 rnn, lstm or gru model on the fast kernels
    (charnn/nn/fast/stream.py; the caller has loaded them with charnn.nn.fast.load()): the same
    numbers to float32 rounding, 1.7-2.4x the characters per second; other models, or kernels that
    do not compile, read on NumPy. The choice is always the caller's, never this process's history,
    so one call gives the same text wherever it runs."""

    def __init__(self, params: model.Params, cell: str, kernels: str = "numpy"):
        self.c, self.params = cells.get(cell), params
        self.layers = [model.layer_params(params, i) for i in range(model.num_layers_of(params))]
        p0, enc = self.layers[0], model.encoder_of(params, cell)
        self.read = enc.reader(p0[self.c.input_weight], p0[self.c.input_bias])  # layer 0: row lookups
        zero = [s[0] for s in model.zero_state(params, 1, cell)]
        H = params["head.W_hy"].shape[0]
        if enc.context_width():  # layer 0's carried slot holds the encoder's characters, not a cell state
            self.context, zero[0] = zero[0], np.zeros(self.c.state_width(H), params["head.W_hy"].dtype)
        else:
            self.context = None
        self._states = zero
        self.fast = fast.reader(params, cell, zero) if kernels == "fast" else None

    @property
    def states(self) -> list[np.ndarray]:
        """Each layer's state now (1-D: [h | c] for the LSTM)."""
        return self.fast.states() if self.fast is not None else self._states

    def logits(self, char_id: int) -> np.ndarray:
        if self.fast is not None:
            return self.fast.logits(char_id)
        c, states = self.c, self._states
        xa, self.context = self.read(char_id, self.context)
        x, states[0] = c.step(xa, states[0], self.layers[0])
        for layer, p in enumerate(self.layers[1:], start=1):
            x, states[layer] = c.step(x @ p[c.input_weight] + p[c.input_bias], states[layer], p)
        return x @ self.params["head.W_hy"] + self.params["head.b_y"]


class BatchReader:
    """Many streams read together, one character each per step: the rows of one (B, H) batch
    per layer, so each step is one matrix product per weight for all of them (what charnn serve
    steps). Rows join and leave between steps. The recurrent cells only (the one-hot encoder);
    a stream's numbers may differ from a lone Reader's in the last bits, as BLAS sums a batch
    in another order than a single row: the server reads a stream that must be reproducible
    with its own Reader."""

    def __init__(self, params: model.Params, cell: str):
        self.c, self.params = cells.get(cell), params
        if self.c.windowed:
            raise CharnnError(f"the {cell} cell reads a window of characters: read its streams one by one")
        self.layers = [model.layer_params(params, i) for i in range(model.num_layers_of(params))]
        p0 = self.layers[0]
        self.table = p0[self.c.input_weight] + p0[self.c.input_bias]  # layer 0's one-hot product: a row lookup
        self.widths = [s.shape[1] for s in model.zero_state(params, 1, cell)]
        self.dtype = params["head.W_hy"].dtype
        self.states = [np.zeros((0, w), self.dtype) for w in self.widths]

    @property
    def size(self) -> int:
        return self.states[0].shape[0]

    def add(self) -> int:
        """A new stream from a zero state; returns its row."""
        self.states = [np.concatenate([s, np.zeros((1, w), self.dtype)]) for s, w in zip(self.states, self.widths)]
        return self.size - 1

    def remove(self, row: int) -> int | None:
        """Drop a stream; the last row moves into its place: returns the row that moved there (or None)."""
        last = self.size - 1
        for s in self.states:
            s[row] = s[last]
        self.states = [s[:last].copy() for s in self.states]
        return last if row != last else None

    def logits(self, char_ids: np.ndarray) -> np.ndarray:
        """Read char_ids[i] into row i (for every row); returns the next-character logits (B, V)."""
        c = self.c
        x, self.states[0] = c.step(self.table[char_ids], self.states[0], self.layers[0])
        for layer, p in enumerate(self.layers[1:], start=1):
            x, self.states[layer] = c.step(x @ p[c.input_weight] + p[c.input_bias], self.states[layer], p)
        return x @ self.params["head.W_hy"] + self.params["head.b_y"]


def choose(logits: np.ndarray, temperature: float, top_k: int, greedy: bool, rng: np.random.Generator,
           top_p: float = 1.0, kernels: str = "numpy") -> int:
    """The next character's id from its logits: the likeliest (greedy), else drawn with one
    rng.random() from softmax(logits / temperature) restricted to the top_k likeliest (0: all)
    and then to the fewest likeliest whose probabilities add up to top_p (nucleus sampling).
    kernels="fast" (the kernels loaded) draws without top-k/top-p in one compiled pass."""
    if greedy:
        return int(np.argmax(logits))
    if kernels == "fast" and (top_k == 0 or top_k >= len(logits)) and top_p >= 1.0 and logits.dtype == np.float32 \
            and fast.loaded():
        return fast.choose(logits, temperature, rng.random())  # the same draw, unless u falls within exp's last bit
    z = logits.astype(np.float64) / temperature
    if 0 < top_k < len(z):
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    if top_p < 1.0:
        p = np.exp(z - z.max())
        order = np.argsort(-p, kind="stable")
        mass = np.cumsum(p[order]) / p.sum()
        kept = order[: int(np.searchsorted(mass, top_p)) + 1]
        nucleus = np.full_like(z, -np.inf)
        nucleus[kept] = z[kept]
        z = nucleus
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(z) - 1))


def choose_rows(logits: np.ndarray, temperature: np.ndarray, top_k: np.ndarray, top_p: np.ndarray,
                greedy: np.ndarray, u: np.ndarray) -> np.ndarray:
    """choose() for many rows at once, each with its own settings and its own uniform draw u in
    [0, 1): the same rule in array operations (a batch's rows in one pass instead of one call each)."""
    B, V = logits.shape
    z = logits.astype(np.float64) / temperature[:, None]
    if ((top_k > 0) & (top_k < V)).any() or (top_p < 1).any():
        ordered = -np.sort(-z, axis=1)
        k = np.where((top_k > 0) & (top_k < V), top_k, V)
        z = np.where(z < ordered[np.arange(B), k - 1][:, None], -np.inf, z)  # the top-k, ties kept as choose() keeps them
        p = np.exp(z - z.max(axis=1, keepdims=True))
        order = np.argsort(-p, axis=1, kind="stable")  # as choose() ranks them, ties by position
        ranked = np.take_along_axis(p, order, axis=1)
        mass = np.cumsum(ranked, axis=1) / ranked.sum(axis=1, keepdims=True)
        count = np.minimum((mass < top_p[:, None]).sum(axis=1) + 1, V)  # the fewest holding top_p of the mass
        keep = np.zeros((B, V), bool)
        np.put_along_axis(keep, order, np.arange(V)[None, :] < count[:, None], axis=1)
        z = np.where(keep, z, -np.inf)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    drawn = np.minimum((cdf <= (u * cdf[:, -1])[:, None]).sum(axis=1), V - 1)
    return np.where(greedy, logits.argmax(axis=1), drawn)


def check_options(length: int, temperature: float, top_k: int, greedy: bool = False, top_p: float = 1.0) -> None:
    """Sampling settings a user gives; greedy decoding ignores temperature, top-k and top-p."""
    if length < 0:
        raise ParameterError("{length} must be >= 0 (got {got})", got=length)
    if not greedy and not temperature > 0:
        raise ParameterError("{temperature} must be > 0 (got {got}); use {greedy} for the likeliest text", got=temperature)
    if top_k < 0:
        raise ParameterError("{top_k} must be >= 0, 0 meaning all characters (got {got})", got=top_k)
    if not 0 < top_p <= 1:
        raise ParameterError("{top_p} must be in (0, 1], 1 meaning all characters (got {got})", got=top_p)


LINE_BREAK = "\n"


def generate(
    params: model.Params,
    cell: str,
    vocab: Vocab,
    prime: str,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    rng: np.random.Generator,
    top_p: float = 1.0,
    char_counts=None,
    source: str = "the model",
    kernels: str = "numpy",
) -> Iterator[str]:
    """Yield `length` new characters continuing `prime` (the prime itself is not yielded).

    The prime is fed through the model from a zero state. With an empty prime the sample
    starts the way the training text does: after a line break when the vocabulary has one
    (the model reads an unseen "\\n" first), else with a first character drawn by
    `char_counts`, the training text's character frequencies (greedy: the most frequent;
    uniformly when the checkpoint has no counts), yielded as the first of `length`.
    `source` names the model in errors (its checkpoint, say). kernels="fast" reads and draws on
    the fast kernels (loading them; ParameterError where they cannot run), "numpy" on NumPy.
    """
    check_options(length, temperature, top_k, greedy, top_p)
    load_kernels(kernels)
    unknown = vocab.unknown_chars(prime)
    if unknown:
        raise CharnnError(
            f"seed text has characters outside the model's vocabulary: {', '.join(map(repr, unknown))} "
            f"(the model is {source}, {vocab.describe()}); use only characters from its training text"
        )
    return _generate(params, cell, vocab, prime, length, temperature, top_k, top_p, greedy, rng, char_counts, kernels)


def load_kernels(kernels: str) -> None:
    """Check a sampling `kernels` choice and load the fast kernels for "fast" (ParameterError if
    they cannot run here: the caller asked for them, so falling back silently would mislead)."""
    if kernels not in ("numpy", "fast"):
        raise ParameterError("{kernels} must be numpy or fast (got {got!r})", got=kernels)
    if kernels == "fast":
        from charnn import hints

        try:
            fast.load()
        except fast.Unavailable as e:
            install = f"install the fast extra ({hints.install('fast')}) or " if e.missing else ""
            raise ParameterError("{kernels_fast} cannot run here: {why}; " + install + "sample with {kernels_numpy}",
                                 why=str(e)) from None


def first_character(vocab: Vocab, char_counts, greedy: bool, rng: np.random.Generator) -> int:
    """The id a seedless sample starts with when the text has no line breaks: drawn by the training
    text's frequencies (the likeliest when greedy), or uniformly without them."""
    counts = None if char_counts is None else np.asarray(char_counts, np.float64)
    if counts is None or len(counts) != vocab.size or not counts.sum() > 0:
        return int(rng.integers(vocab.size))
    if greedy:
        return int(np.argmax(counts))
    cdf = np.cumsum(counts)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), vocab.size - 1))


def start(vocab: Vocab, prime: str, length: int, greedy: bool, rng: np.random.Generator,
          char_counts=None) -> tuple[list[int], int | None]:
    """How a text begins: (the ids to read before the first new character, the id of a first
    character that is itself part of the sample, or None). The prime is read; an empty prime is
    a line break (read, not shown) or a first character drawn as first_character draws it."""
    if prime:
        return [int(i) for i in vocab.encode(prime)], None
    if length > 0 and LINE_BREAK in vocab.chars:
        return [int(vocab.encode(LINE_BREAK)[0])], None  # the sample begins a line
    if length > 0:
        first = first_character(vocab, char_counts, greedy, rng)
        return [first], first
    return [], None


def _generate(params, cell, vocab, prime, length, temperature, top_k, top_p, greedy, rng, char_counts,
              kernels) -> Iterator[str]:
    ids, shown = start(vocab, prime, length, greedy, rng, char_counts)
    if not ids:
        return
    if shown is not None:
        yield vocab.chars[shown]
        length -= 1
    reader = Reader(params, cell, kernels)
    draws_on = "fast" if reader.fast is not None else "numpy"  # a model the kernels do not read: NumPy's draw too
    for char_id in ids[:-1]:
        reader.logits(char_id)
    current = ids[-1]
    for _ in range(length):
        logits = reader.logits(current)
        current = choose(logits, temperature, top_k, greedy, rng, top_p, draws_on)
        yield vocab.chars[current]
