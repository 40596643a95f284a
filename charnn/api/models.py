"""charnn.load and the Model it returns: sample, stream, score, read and analyse a trained model."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from charnn.analysis import gradients
from charnn.api.defaults import DYNAMIC_DECAY, DYNAMIC_LR, SEGMENT_LEN
from charnn.api.configs import ConfigSource
from charnn.config import Config
from charnn.data.vocab import Vocab, from_symbols, to_symbols
from charnn.errors import ParameterError
from charnn.nn.evaluate import PerCharLoss
from charnn.training import checkpoint

LN2 = math.log(2)


@dataclass(frozen=True)
class Score(PerCharLoss):
    """The loss of a text under a model: mean -ln p(c_i | c_<i) over i >= 1, from a zero state.

    Examples:
        >>> s = model.score("hello")
        >>> round(s.bits_per_char, 3) == round(s.nats_per_char / math.log(2), 3)
        True
    """

    nats_per_char: float
    chars: int  # characters predicted: the text's length - 1
    dynamic_nats_per_char: float | None = None  # with dynamic evaluation (the model adapts as it reads)
    mapped: int = 0  # characters the model never saw, read as its rare-character symbol (data.min_char_count)

    @property
    def dynamic_bits_per_char(self) -> float | None:
        return None if self.dynamic_nats_per_char is None else self.dynamic_nats_per_char / LN2

    def to_dict(self) -> dict:
        """The keys `charnn eval --json` prints (the dynamic ones only when scored so)."""
        out = {"nats_per_char": self.nats_per_char, "bits_per_char": self.bits_per_char,
               "perplexity": self.perplexity, "chars": self.chars}
        if self.dynamic_nats_per_char is not None:
            out.update(dynamic_nats_per_char=self.dynamic_nats_per_char, dynamic_bits_per_char=self.dynamic_bits_per_char)
        return out

    def _repr_html_(self) -> str:
        from charnn.api import html

        return html.key_values("score", [(k.replace("_", " "), v) for k, v in self.to_dict().items()])


class GradientReport(gradients.GradientReport):
    """How gradients flow back through time in each layer: per lag k, ||dl_T/ds_{T-k}||, the Jacobian
    norm ||ds_T/ds_{T-k}|| and each step's share of dl_T/dW_rec, the memory horizon, the decay (or
    growth) per step, and a verdict with advice (report.layers[i].verdict, .advice).

    Examples:
        >>> report = model.inspect_gradients(text="hellohello", steps=6)
        >>> sorted(report.to_dict())[:3]
        ['clip_fraction', 'layers', 'measured_on']
    """

    @classmethod
    def _of(cls, report: gradients.GradientReport) -> "GradientReport":
        return cls(**{f.name: getattr(report, f.name) for f in fields(report)})

    @property
    def verdicts(self) -> list[str]:
        """Per layer: exploding, vanishing, short memory or healthy."""
        return [layer.verdict for layer in self.layers]

    def to_dict(self) -> dict:
        """Every number, with stable keys (what `charnn inspect-gradients --json` prints)."""
        return self.as_dict()

    def plot(self, path: str | Path) -> Path:
        """Draw the norms against lag, one panel per layer, into a picture file (.png, .svg, ...);
        needs matplotlib."""
        from charnn.analysis import figures

        figures.to_file(figures.gradient_flow(self, "plot"), path)
        return Path(path)

    def _repr_html_(self) -> str:
        from charnn.api import html

        return html.gradient_report(self)


@dataclass
class LayerStates:
    """One layer read over a text: what each unit showed after each character, and the gates.

    Examples:
        >>> layer = model.states("hello")[0]
        >>> layer.units.shape, sorted(layer.gates)
        ((5, 16), [])
    """

    units: np.ndarray  # (T, H): the output, or for the LSTM tanh(c): what the report colours
    gates: dict[str, np.ndarray] = field(default_factory=dict)  # gate name -> (T, H), for gated cells


class Model:
    """A trained (or freshly initialised) model: sample from it, score texts, look inside.

    Get one with `charnn.load(path)`, `run.model()` or `charnn.init_model(config)`.

    Examples:
        >>> model = charnn.load(run.dir / "best.npz")
        >>> model.sample(seed="h", length=4, greedy=True)
        'ello'
    """

    def __init__(self, ckpt: checkpoint.Checkpoint):
        self._ckpt = ckpt

    # ---- what it is ---------------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        """The typed config it was trained with (charnn.config.Config)."""
        return self._ckpt.config

    @property
    def vocab(self) -> Vocab:
        """Its characters: vocab.chars, vocab.encode(text), vocab.decode(ids)."""
        return self._ckpt.vocab

    @property
    def cell(self) -> str:
        """model.cell: rnn, lstm, gru or mlp."""
        return self._ckpt.cell

    @property
    def num_parameters(self) -> int:
        return int(sum(p.size for p in self._ckpt.params.values()))

    @property
    def val_loss(self) -> float | None:
        """The validation loss (nats/char) its checkpoint recorded when it was written, or None."""
        value = self._ckpt.meta.get("val_loss")
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    @property
    def path(self) -> Path | None:
        """The checkpoint it was loaded from (None for a fresh model)."""
        return self._ckpt.path

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Its parameters by checkpoint key (rnn.0.W_xh, ..., head.b_y): NumPy arrays, not copies."""
        return self._ckpt.params

    def __repr__(self) -> str:
        m = self.config.model
        return (f"<charnn.Model {m.cell}, {m.num_layers} x {m.hidden_size} units, {self.num_parameters:,} parameters, "
                f"vocabulary {self.vocab.size}{f', from {self.path}' if self.path else ''}>")

    def _repr_html_(self) -> str:
        from charnn.api import html

        m = self.config.model
        return html.key_values("model", [("cell", m.cell), ("layers x units", f"{m.num_layers} x {m.hidden_size}"),
                                         ("parameters", f"{self.num_parameters:,}"), ("vocabulary", self.vocab.size),
                                         ("checkpoint", self.path or "-")])

    # ---- generating ---------------------------------------------------------------------------------

    def stream(self, seed: str = "", length: int | None = None, temperature: float | None = None,
               top_k: int | None = None, greedy: bool = False,
               rng_seed: int | np.random.Generator | None = None, top_p: float | None = None,
               kernels: str = "numpy") -> Iterator[str]:
        """The characters that continue `seed`, one piece at a time as they are made (the seed itself
        is not repeated). Without a seed the text starts the way the training text does (after a line
        break, or with a first character drawn by its frequencies). length, temperature, top_k and
        top_p (nucleus sampling: the fewest likeliest characters holding that share of the
        probability) default to the config's sample section; greedy takes the likeliest character;
        rng_seed makes the draw repeatable (or give a numpy Generator to continue its stream).
        kernels="fast" reads on the fast kernels (the `fast` extra; float32 rnn, lstm and gru
        models, 1.7-2.4x the characters per second): the same text to float32 rounding, so a draw
        can differ from NumPy's after a while; one choice of kernels always gives the same text.

        Examples:
            >>> "".join(model.stream(seed="h", length=4, greedy=True))
            'ello'
        """
        from charnn.nn.sampling import generate

        s = self.config.sample
        length = s.length if length is None else length
        temperature = s.temperature if temperature is None else temperature
        top_k = s.top_k if top_k is None else top_k
        top_p = s.top_p if top_p is None else top_p
        encoding = self.config.data.encoding
        prime, _ = self.vocab.map_rare(to_symbols(seed, encoding))
        chars = generate(self._ckpt.params, self.cell, self.vocab, prime, length, temperature=temperature, top_k=top_k,
                         greedy=greedy, top_p=top_p, rng=rng_seed if isinstance(rng_seed, np.random.Generator)
                         else np.random.default_rng(rng_seed), char_counts=self._ckpt.char_counts,
                         source=self._ckpt.name, kernels=kernels)
        return _decoded(chars, encoding)

    def sample(self, seed: str = "", length: int | None = None, temperature: float | None = None,
               top_k: int | None = None, greedy: bool = False,
               rng_seed: int | np.random.Generator | None = None, top_p: float | None = None,
               kernels: str = "numpy") -> str:
        """The text that continues `seed` (without the seed): `stream`'s pieces joined.

        Examples:
            >>> model.sample(seed="h", length=4, greedy=True)
            'ello'
        """
        return "".join(self.stream(seed, length, temperature, top_k, greedy, rng_seed, top_p, kernels))

    def generation(self, prompt: str = "", *, length: int | None = None, temperature: float | None = None,
                   top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                   rng_seed: int | None = None, logprobs: int = 0, echo: bool = False):
        """A text to make step by step (a charnn.Generation): the same text as `sample` with the
        same settings and rng_seed, a Piece at a time, with each character's log-probability and
        the `logprobs` likeliest alternatives when asked; echo also reports the prompt's own
        characters. Step it alone (`.run()`, `.step()`) or with others in a `batch()`.

        Examples:
            >>> pieces = list(model.generation("h", length=4, greedy=True, logprobs=2).run())
            >>> "".join(p.text for p in pieces), len(pieces[0].top)
            ('ello', 2)
        """
        from charnn.api.generation import Generation

        s = self.config.sample
        return Generation(self, prompt, length=s.length if length is None else length,
                          temperature=s.temperature if temperature is None else temperature,
                          top_k=s.top_k if top_k is None else top_k, top_p=s.top_p if top_p is None else top_p,
                          greedy=greedy, rng_seed=rng_seed, logprobs=logprobs, echo=echo)

    def batch(self):
        """A charnn.Batch: generations of this model stepped together, one character each per step,
        joining and leaving between steps (continuous batching, as `charnn serve` runs it).

        Examples:
            >>> batch = model.batch()
            >>> batch.add(model.generation("h", length=3, greedy=True))
            >>> [piece.text for _, piece in batch.step()]
            ['e']
        """
        from charnn.api.generation import Batch

        return Batch(self)

    # ---- scoring and reading ------------------------------------------------------------------------

    def score(self, text: str | None = None, *, file: str | Path | None = None, split: str | None = None,
              streams: int = 1, dynamic: bool = False, segment_len: int = SEGMENT_LEN,
              dynamic_lr: float = DYNAMIC_LR, dynamic_decay: float = DYNAMIC_DECAY) -> Score:
        """The loss of `text` (or of a text `file` of any size, or of the `split` "train", "val" or
        "test" of the model's own corpus), exactly as `charnn eval` scores it. streams > 1 scores
        that many warmed-up pieces side by side (faster, very slightly approximate); dynamic=True
        adds the loss under dynamic evaluation (segment_len, dynamic_lr, dynamic_decay tune it).

        Examples:
            >>> model.score("hello").chars
            4
        """
        from charnn.analysis.dynamic import DynamicSettings
        from charnn.analysis.scoring import score

        if streams < 1:
            raise ParameterError("{streams} must be >= 1 (got {got})", got=streams)
        settings = DynamicSettings(segment_len, dynamic_lr, dynamic_decay)
        if not dynamic and settings != DynamicSettings():
            raise ParameterError("{segment_len}, {dynamic_lr} and {dynamic_decay} apply to dynamic evaluation: "
                                 "add {dynamic}")
        symbols = None if text is None else to_symbols(text, self.config.data.encoding)
        mapped = []
        result, _ = score(self._ckpt, text=symbols, text_file=file, split=split, streams=streams,
                          dynamic=settings if dynamic else None, note=lambda count, name: mapped.append(count))
        return Score(result["nats_per_char"], result["chars"], result.get("dynamic_nats_per_char"), sum(mapped))

    def probabilities(self, text: str) -> np.ndarray:
        """(T, V): after each character of `text`, the model's distribution over the next one (the
        softmax of its output), from a zero state; column j is the character model.vocab.chars[j].

        Examples:
            >>> p = model.probabilities("hell")
            >>> p.shape, model.vocab.chars[int(p[-1].argmax())]
            ((4, 4), 'o')
        """
        from charnn.analysis.report.reading import read_text

        reading = read_text(self._ckpt, to_symbols(text, self.config.data.encoding), top=self.vocab.size)
        probs = np.zeros((len(reading.text), self.vocab.size))
        np.put_along_axis(probs, reading.top_ids, reading.top_probs, axis=1)
        return probs

    def states(self, text: str) -> list[LayerStates]:
        """Per layer, what each unit showed after each character of `text` (T, H), and each gate's
        value for gated cells: the numbers `charnn report` colours the text with.

        Examples:
            >>> [layer.units.shape for layer in model.states("hello")]
            [(5, 16)]
        """
        from charnn.analysis.report.reading import read_text

        reading = read_text(self._ckpt, to_symbols(text, self.config.data.encoding))
        return [LayerStates(reading.units[layer], {name: g for (l, name), g in reading.gates.items() if l == layer})
                for layer in range(reading.layers)]

    def inspect_gradients(self, text: str | None = None, steps: int | None = None, windows: int = 8,
                          rng_seed: int = 0, check: bool = False, *, file: str | Path | None = None) -> GradientReport:
        """How the gradient of the last step's loss flows back through time, per layer and lag, with a
        verdict per layer (exploding, vanishing, short memory or healthy) and the advice that fits.

        Without `text`, `windows` random windows of the validation text (the training text if that
        is too short) of `steps` + 1 characters (default 50 + 1, fewer for a short text), exactly
        as `charnn inspect-gradients` and the report measure; with `text` (or a text `file`), its
        first steps + 1 characters. check=True also checks backward against finite differences.

        Examples:
            >>> report = model.inspect_gradients(text="hellohello", steps=6)
            >>> report.layers[0].verdict in ("exploding", "vanishing", "short memory", "healthy")
            True
        """
        from charnn.analysis.gradients import inspect_model, window_source

        if text is not None and file is not None:
            raise ParameterError("give either {text} or {file}, not both")
        if file is not None:
            from charnn.data.sources import read_text_file

            text = read_text_file(file)
        if text is not None:
            symbols, _ = self.vocab.map_rare(to_symbols(text, self.config.data.encoding))
            source, name = None, "the given text"
        else:
            from charnn.data.corpus import load_corpus

            symbols = None
            corpus = load_corpus(self.config)
            source, name = window_source(corpus.train, corpus.val, steps)
        step = self._ckpt.meta.get("step") or 0
        clip = self._ckpt.meta["clip_count"] / step if step and "clip_count" in self._ckpt.meta else None
        return GradientReport._of(inspect_model(self._ckpt.params, self.cell, self.vocab, steps=steps, text=symbols,
                                                windows=windows, corpus_ids=source, corpus_name=name, rng_seed=rng_seed,
                                                clip_fraction=clip, check=check))


def _decoded(symbols: Iterator[str], encoding: str) -> Iterator[str]:
    """Text pieces from model symbols: each character as it comes (in bytes mode, once the UTF-8
    bytes of a character are complete; invalid bytes become U+FFFD)."""
    if encoding == "utf-8":
        yield from symbols
        return
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for symbol in symbols:
        piece = decoder.decode(from_symbols(symbol, encoding))
        if piece:
            yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def load(path: str | Path) -> Model:
    """A model from a checkpoint file (best.npz, latest.npz), an exported .safetensors file or an hf
    export folder, checked as every command checks it: a damaged or hostile file is a CharnnError
    that says so, never a crash.

    Examples:
        >>> model = charnn.load(run.dir / "best.npz")
        >>> model.cell
        'rnn'
    """
    from charnn.formats import safetensors_file

    path = Path(path)
    return Model(safetensors_file.load(path) if safetensors_file.is_safetensors(path) else checkpoint.load(path))


def init_model(config: ConfigSource, *, init_std: float | None = None, vocabulary: str | None = None) -> Model:
    """A freshly initialised model of a config (as training would start it, in float64), for looking
    at gradients before any training; init_std draws every weight from N(0, init_std^2). The
    vocabulary comes from the config's corpus, or from the characters of `vocabulary`.

    Examples:
        >>> fresh = charnn.init_model({"data": {"text": "hello"}}, init_std=1.0)
        >>> fresh.inspect_gradients(text="hellohello", steps=6).layers[0].verdict
        'exploding'
    """
    from charnn.api.configs import load_config
    from charnn.config import to_dict
    from charnn.nn import model

    if init_std is not None and not init_std > 0:
        raise ParameterError("{init_std} must be > 0 (got {got})", got=init_std)
    extra = {"model.init_scale": init_std, "model.init": "normal"} if init_std else {}
    cfg = load_config(config, extra)
    if vocabulary is not None:
        vocab = Vocab.from_text(vocabulary)
    else:
        from charnn.data.corpus import load_corpus

        vocab = load_corpus(cfg).vocab
    params = model.init_for(cfg.model, vocab.size, np.random.default_rng(cfg.run.seed), dtype=np.float64)
    meta = {"vocab": list(vocab.chars), "config": to_dict(cfg), "step": 0}
    ckpt = checkpoint.Checkpoint(params, meta)
    ckpt.config = cfg
    return Model(ckpt)

