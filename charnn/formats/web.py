"""A model as one self-contained HTML page that samples in the browser: no server, no network,
opens from file://. The page (web.html, web.css, web.js beside this file) gets the weights
inlined as base64 (float16 by default: half the size), the model's description as JSON, and
the WebAssembly kernel of charnn/formats/wasm.py.
"""

from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources

import numpy as np

from charnn import __version__
from charnn.errors import CharnnError
from charnn.formats import tensors
from charnn.formats.wasm import matvec_module
from charnn.training.checkpoint import Checkpoint

LN2 = float(np.log(2))


def _resource(name: str) -> str:
    return resources.files("charnn.formats").joinpath(name).read_text(encoding="utf-8")


def _script_json(data) -> str:
    """JSON safe inside <script>: ASCII only, and no "</" that could end the element."""
    return json.dumps(data, ensure_ascii=True, allow_nan=False).replace("</", "<\\/")


def model_name(ckpt: Checkpoint) -> str:
    """What pages and model cards call the model: its run's name, else its file's."""
    if ckpt.config.run.name:
        return ckpt.config.run.name
    return ckpt.path.parent.name if ckpt.path is not None and ckpt.path.name in ("best.npz", "latest.npz") else \
        (ckpt.path.stem if ckpt.path is not None else "charnn model")


def bits_per_char(nats) -> float | None:
    return float(nats) / LN2 if isinstance(nats, (int, float)) and not isinstance(nats, bool) else None


def facts(ckpt: Checkpoint) -> str:
    """One line: cell, size, parameters, vocabulary and validation loss."""
    m = ckpt.config.model
    n = sum(int(p.size) for p in ckpt.params.values())
    val = bits_per_char(ckpt.meta.get("val_loss"))
    score = f"validation {val:.3f} bits/char" if val is not None else "no validation score"
    return (f"{m.cell.upper() if m.cell != 'rnn' else 'Elman RNN'}, {m.num_layers} x {m.hidden_size} units, "
            f"{n:,} parameters, vocabulary of {len(ckpt.vocab_chars)}; {score}")


def page(ckpt: Checkpoint, dtype: str = "float16") -> str:
    """The HTML text of the page for `ckpt` with weights stored in `dtype` (float16 or float32)."""
    if ckpt.cell == "mlp":
        raise CharnnError("the mlp cell exports to safetensors only (onnx, web and hf need a recurrent cell: rnn, lstm "
                          "or gru); use --format safetensors")
    named = tensors.to_torch(ckpt.params, ckpt.cell)
    blob = b"".join(np.ascontiguousarray(v, np.dtype(dtype).newbyteorder("<")).tobytes() for v in named.values())
    m, s = ckpt.config.model, ckpt.config.sample
    description = {
        "name": model_name(ckpt), "cell": m.cell, "num_layers": m.num_layers, "hidden_size": m.hidden_size,
        "vocab": ckpt.vocab_chars, "char_counts": ckpt.char_counts, "encoding": ckpt.config.data.encoding,
        "val_loss": ckpt.meta.get("val_loss"), "dtype": dtype,
        "tensors": [[name, list(v.shape)] for name, v in named.items()],
    }
    values = {
        "title": html.escape(f"{model_name(ckpt)}: a charnn model"),
        "facts": html.escape(facts(ckpt)),
        "version": __version__,
        "temperature": f"{min(2.0, max(0.05, s.temperature)):.2f}",
        "top_k": str(s.top_k),
        "style": _resource("web.css"),
        "script": _resource("web.js"),
        "model_json": _script_json(description),
        "wasm_base64": base64.b64encode(matvec_module()).decode("ascii"),
        "weights_base64": base64.b64encode(blob).decode("ascii"),
    }
    # one pass: a value that happens to contain "{{...}}" is never substituted again
    return re.sub(r"\{\{(\w+)\}\}", lambda match: values[match.group(1)], _resource("web.html"))
