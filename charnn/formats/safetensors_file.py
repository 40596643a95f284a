"""Models as .safetensors files: torch's names and layouts (charnn/formats/tensors.py), charnn's
config and vocabulary in the metadata, readable by charnn (sample, eval, info) and by torch.

The file: 8 bytes (little-endian header length), a JSON header naming every tensor's dtype,
shape and byte range, then the data. Writing uses the safetensors package. Reading trusts
nothing: the header's size is bounded before it is read, and every tensor's name, dtype,
shape and byte range is checked against what the metadata's config describes, and the byte
ranges against the file's size, before any weight is read (so a truncated or hostile file is
a one-line error, as a damaged checkpoint is).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from charnn import __version__
from charnn.config import to_dict
from charnn.errors import CharnnError
from charnn.formats import tensors
from charnn.nn import model
from charnn.settings import from_dict
from charnn.training.checkpoint import MAX_META_CHARS, Checkpoint

FORMAT, VERSION = "charnn", "1"
DTYPES = {"float32": "F32", "float16": "F16"}
MAX_HEADER = 4 * MAX_META_CHARS + 1_000_000  # the metadata as a checkpoint may hold it, and the tensor table
TRAINING_KEYS = ("step", "val_loss", "best_val_loss", "elapsed_s", "charnn_version")


def encode(ckpt: Checkpoint, dtype: str = "float32") -> bytes:
    """The file's bytes: the weights in `dtype` (float32 or float16) under torch's names, and metadata."""
    try:
        from safetensors import numpy as numpy_io
    except ImportError:  # a dependency of charnn: only a broken install lacks it
        raise CharnnError("exporting needs the safetensors package: pip install safetensors") from None
    arrays = {k: v.astype(dtype) for k, v in tensors.to_torch(ckpt.params, ckpt.cell).items()}
    config = to_dict(ckpt.config)
    config["model"]["dtype"] = "float32"  # what charnn computes in once it reads the file back
    metadata = {
        "format": FORMAT, "format_version": VERSION, "dtype": dtype,
        "config": json.dumps(config, ensure_ascii=False),
        "vocab": json.dumps(ckpt.vocab_chars, ensure_ascii=False),
        "char_counts": json.dumps(ckpt.char_counts),
        "training": json.dumps({k: ckpt.meta.get(k) for k in TRAINING_KEYS} | {"exported_by": __version__}),
    }
    return bytes(numpy_io.save(arrays, metadata=metadata))


def is_safetensors(path: Path) -> bool:
    """A .safetensors file, or a folder holding model.safetensors (an hf export)."""
    return path.suffix == ".safetensors" or (path.is_dir() and (path / "model.safetensors").is_file())


def load(path: str | Path) -> Checkpoint:
    """The model a file holds, as a Checkpoint (float32 parameters, no optimizer or carried state)."""
    path = _file(Path(path))
    meta, table, data_start, cfg = _checked(path)
    with open(path, "rb") as f:
        f.seek(data_start)
        data = f.read()
    store = np.dtype(np.float16 if meta["dtype"] == "float16" else np.float32).newbyteorder("<")
    found = {name: np.frombuffer(data, store, int(np.prod(entry["shape"])), entry["data_offsets"][0]).reshape(entry["shape"])
             for name, entry in table.items()}
    params = {k: v.astype(np.float32) for k, v in tensors.from_torch(found, cfg.model.cell, cfg.model.num_layers).items()}
    try:
        model.check_finite(params)
    except CharnnError as e:
        raise CharnnError(f"{path}: {e}") from None
    ckpt = Checkpoint(params=params, meta=meta, path=path)
    ckpt.config = cfg
    return ckpt


def describe(path: str | Path) -> dict:
    """What the file holds (the keys of checkpoint.describe), from its header alone."""
    path = _file(Path(path))
    meta, table, _, cfg = _checked(path)
    return {
        "path": str(path), "file_bytes": path.stat().st_size, "format": "charnn-safetensors",
        "format_version": int(VERSION),
        "charnn_version": meta.get("charnn_version"), "cell": cfg.model.cell, "vocab_size": len(meta["vocab"]),
        "hidden_size": cfg.model.hidden_size, "num_layers": cfg.model.num_layers, "dtype": meta["dtype"],
        "parameters": sum(int(np.prod(shape)) for shape in model.param_shapes(  # charnn's count: no zero bias_hh
            len(meta["vocab"]), cfg.model.hidden_size, cfg.model.num_layers, cfg.model.cell, cfg.model.window).values()),
        "vocabulary": meta["vocab"],
        "step": meta.get("step"), "chars_seen": None, "best_val_loss": meta.get("best_val_loss"),
        "val_loss": meta.get("val_loss"), "elapsed_s": meta.get("elapsed_s"), "config": meta["config"],
    }


def _file(path: Path) -> Path:
    if path.is_dir():
        if not (path / "model.safetensors").is_file():
            raise CharnnError(f"{path} holds no model.safetensors; give a checkpoint file or an hf export folder")
        return path / "model.safetensors"
    if not path.is_file():
        raise CharnnError(f"{path} not found; give an exported .safetensors file (charnn export --format safetensors)")
    return path


def _damaged(path: Path, why: str) -> CharnnError:
    return CharnnError(f"{path} is truncated or corrupted ({why}); export the model again")


def _header(path: Path) -> tuple[dict, int, int]:
    """(the parsed JSON header, where the data starts, the data's length), sizes checked first."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise _damaged(path, f"{size} bytes, shorter than a safetensors header")
        n = int.from_bytes(prefix, "little")
        if n > MAX_HEADER:
            raise _damaged(path, f"it announces a {n:,}-byte header, more than the {MAX_HEADER:,} accepted")
        if 8 + n > size:
            raise _damaged(path, f"its {n:,}-byte header runs past the end of the {size:,}-byte file")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _damaged(path, "its header is not JSON") from None
    if not isinstance(header, dict):
        raise _damaged(path, "its header is not a JSON object")
    return header, 8 + n, size - 8 - n


def _checked(path: Path):
    """(meta, name -> header entry, where the data starts, the typed config), every check passed."""
    header, data_start, data_len = _header(path)
    metadata = header.pop("__metadata__", None)
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CharnnError(f"{path} is a safetensors file without charnn's metadata; only charnn's exports can be read "
                          "(charnn export --format safetensors)")
    if metadata.get("format_version") != VERSION:
        raise CharnnError(f"{path} has charnn export format version {metadata.get('format_version')!r}; this charnn "
                          f"reads version {VERSION}: use the charnn version that wrote it")
    meta, cfg = _meta(path, metadata)
    if cfg.model.num_layers > len(header):
        raise _damaged(path, f"its config has {cfg.model.num_layers} layers, more than it has tensors")
    m, itemsize = cfg.model, 2 if meta["dtype"] == "float16" else 4
    charnn_shapes = model.param_shapes(len(meta["vocab"]), m.hidden_size, m.num_layers, m.cell, m.window)
    if sum(int(np.prod(shape, dtype=object)) for shape in charnn_shapes.values()) * itemsize > data_len:
        raise _damaged(path, f"its config needs more than its {data_len:,} bytes of data")  # before any array is made
    expected = tensors.shapes(m.cell, len(meta["vocab"]), m.hidden_size, m.num_layers, m.window)
    if set(header) != set(expected):
        name = sorted(set(expected) - set(header)) or sorted(set(header) - set(expected))
        raise _damaged(path, f"tensor {name[0]!r} is {'missing' if name[0] in expected else 'unexpected'}")
    spans = []
    for name, shape in expected.items():
        entry = header[name]
        if not isinstance(entry, dict) or entry.get("dtype") != DTYPES[meta["dtype"]] or entry.get("shape") != list(shape):
            raise _damaged(path, f"tensor {name!r} is not {meta['dtype']} {shape}")
        offsets = entry.get("data_offsets")
        if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
                or offsets[1] - offsets[0] != itemsize * int(np.prod(shape)) or offsets[0] < 0):
            raise _damaged(path, f"tensor {name!r} has a byte range that does not fit its shape")
        spans.append(offsets)
    spans.sort()
    if spans[0][0] != 0 or any(a[1] != b[0] for a, b in zip(spans, spans[1:])) or spans[-1][1] != data_len:
        raise _damaged(path, f"its tensors do not fill its {data_len:,} bytes of data exactly")
    return meta, header, data_start, cfg


def _meta(path: Path, metadata: dict):
    """The checkpoint-style meta (vocab, config, char_counts, training progress) and the typed config."""
    try:
        config = json.loads(metadata["config"])
        vocab = json.loads(metadata["vocab"])
        counts = json.loads(metadata.get("char_counts", "null"))
        training = json.loads(metadata.get("training", "{}"))
    except (KeyError, TypeError, ValueError, RecursionError):
        raise CharnnError(f"{path} has incomplete charnn metadata (config, vocab); export the model again") from None
    if metadata.get("dtype") not in DTYPES:
        raise _damaged(path, f"its metadata names dtype {metadata.get('dtype')!r}")
    if not isinstance(vocab, list) or not vocab or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
        raise CharnnError(f"{path} has damaged charnn metadata (vocab); export the model again")
    if counts is not None and not (isinstance(counts, list) and len(counts) == len(vocab)
                                   and all(type(n) is int and n >= 0 for n in counts)):
        raise CharnnError(f"{path} has damaged charnn metadata (char_counts); export the model again")
    cfg = from_dict(config, source=f"the metadata of {path}")
    if not isinstance(training, dict):
        training = {}
    meta = {k: training.get(k) for k in TRAINING_KEYS}
    meta.update(vocab=vocab, config=config, char_counts=counts, dtype=metadata["dtype"])
    return meta, cfg
