"""charnn.export: a model in a format other tools read (safetensors, onnx, web, hf)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from charnn.api.models import Model, load


@dataclass(frozen=True)
class Export:
    """What an export wrote: `to_dict()` is what `charnn export --json` prints.

    Examples:
        >>> done = charnn.export(model, "hello.html", format="web", force=True)
        >>> sorted(done.to_dict()), done.dtype
        (['bytes', 'cell', 'dtype', 'format', 'parameters', 'path'], 'float16')
    """

    path: Path
    format: str  # safetensors, onnx, web or hf
    bytes: int  # the file's size (hf: the folder's files together)
    dtype: str  # the weights' storage type: float32 or float16
    cell: str
    parameters: int

    def to_dict(self) -> dict:
        return dict(asdict(self), path=str(self.path))


def export(model: Model | str | Path, path: str | Path, *, format: str, dtype: str | None = None,
           force: bool = False) -> Export:
    """Write `model` (a Model, or a checkpoint path) to `path` in `format`:

    - "safetensors": the weights under torch's names (torch.nn.RNN / LSTM / GRU plus a Linear head
      load them with strict=True), the config and vocabulary in the metadata; charnn.load reads it.
    - "onnx": a one-step graph (inputs char, h, and c for the LSTM; outputs logits, h_out, c_out);
      needs the onnx package (the [onnx] extra).
    - "web": one HTML page that samples in the browser, offline (float16 weights by default).
    - "hf": a folder for the Hugging Face Hub: model.safetensors, config.json, a model card
      README.md (validation, and test bits/char where the model's text has a test split; three
      samples) and web.html; charnn.load reads the folder.

    dtype is float32 or float16 (the default: float16 for web, float32 otherwise). An existing
    path is replaced only with force=True; the output appears whole or not at all.

    Examples:
        >>> done = charnn.export(model, "hello.safetensors", format="safetensors", force=True)
        >>> done.format, done.dtype, charnn.load(done.path).sample(seed="h", length=4, greedy=True)
        ('safetensors', 'float32', 'ello')
    """
    from charnn import formats

    model = model if isinstance(model, Model) else load(path=model)
    ckpt, path = model._ckpt, Path(path)
    dtype = formats.check(format, dtype, model.cell)
    card = _card(model) if format == "hf" else None
    formats.write(ckpt, path, format, dtype, force, card)
    from charnn.formats.output import size_of

    return Export(path=path, format=format, bytes=size_of(path), dtype=dtype, cell=model.cell,
                  parameters=model.num_parameters)


def _card(model: Model):
    """The model card's measurements: test bits/char where the training text is at hand and has a
    test split (scored as validation was), and three samples."""
    from charnn.errors import CharnnError
    from charnn.formats.hf import Card

    card = Card(samples=[model.sample(length=200, rng_seed=k) for k in range(3)],
                sample_temperature=model.config.sample.temperature)
    if model.config.data.test_fraction > 0:
        try:
            score = model.score(split="test", streams=model.config.run.eval_streams)
        except CharnnError:  # the text moved or is gone: the card says "not scored"
            return card
        card.test_bits_per_char, card.test_chars = score.bits_per_char, score.chars
    return card
