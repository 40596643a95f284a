"""Models that leave charnn: safetensors (torch's names), ONNX (a step graph), a web page that
samples in the browser, and a Hugging Face folder with a model card.

`write(ckpt, path, format, dtype, force)` checks its arguments and the output path, builds the
format and writes it atomically; charnn.export (charnn/api/exports.py) is the public call.
"""

from __future__ import annotations

from pathlib import Path

from charnn import spelling
from charnn.errors import CharnnError, ParameterError
from charnn.training.checkpoint import Checkpoint

FORMATS = ("safetensors", "onnx", "web", "hf")
DTYPES = ("float32", "float16")
DEFAULT_DTYPE = {"safetensors": "float32", "onnx": "float32", "web": "float16", "hf": "float32"}


def check(format: str, dtype: str | None, cell: str) -> str:
    """The dtype to write (the format's default when None); a bad format or dtype is a ParameterError."""
    if format not in FORMATS:
        raise ParameterError("unknown export format {got!r}{hint}; {format} is one of " + ", ".join(FORMATS),
                             got=format, hint=spelling.suggest(format, FORMATS))
    dtype = DEFAULT_DTYPE[format] if dtype is None else dtype
    if dtype not in DTYPES:
        raise ParameterError("unknown {dtype} {got!r}{hint}; it is float32 or float16", got=dtype,
                             hint=spelling.suggest(dtype, DTYPES))
    if cell == "mlp" and format != "safetensors":
        raise CharnnError(f"the mlp cell exports to safetensors only ({format} needs a recurrent cell: rnn, lstm or "
                          "gru); use --format safetensors")
    return dtype


def write(ckpt: Checkpoint, path: Path, format: str, dtype: str, force: bool, card=None) -> None:
    """Build `format` from `ckpt` and write it to `path` (a file; a folder for hf), atomically."""
    from charnn.formats import output

    if format == "hf":
        from charnn.formats import hf

        hf.write(path, ckpt, dtype, card or hf.Card(), force)
        return
    output.check_target(path, folder=False, force=force)
    if format == "safetensors":
        from charnn.formats.safetensors_file import encode

        content = encode(ckpt, dtype)
    elif format == "onnx":
        from charnn.formats.onnx_graph import build

        content = build(ckpt, dtype)
    else:
        from charnn.formats.web import page

        content = page(ckpt, dtype).encode("utf-8")
    output.write_file(path, content)
