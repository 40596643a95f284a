"""Self-contained checkpoints: one .npz of plain arrays plus JSON metadata, no pickle.

Layout (keys of the .npz):
    rnn.{l}.W_xh ... head.b_y   model parameters (names of charnn.model.param_shapes)
    optim.<slot>.<param>, optim.t  optimizer running state
    state.{l}                   hidden state carried into the next training chunk, (B, H)
    meta                        JSON text: format, version, vocab, config, step, ...
Writes are atomic: a temporary file in the same folder, flushed, fsynced, then renamed.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charnn import model
from charnn.errors import CharnnError

FORMAT = "charnn-checkpoint"
VERSION = 1


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    meta: dict
    optim_state: dict[str, np.ndarray] = field(default_factory=dict)
    hidden: list[np.ndarray] = field(default_factory=list)

    @property
    def vocab_chars(self) -> list[str]:
        return self.meta["vocab"]

    @property
    def config(self) -> dict:
        return self.meta["config"]


def save(path: str | Path, ckpt: Checkpoint) -> None:
    """Write atomically: a crash at any moment leaves the previous file at `path` intact."""
    path = Path(path)
    meta = dict(ckpt.meta, format=FORMAT, version=VERSION)
    arrays = dict(ckpt.params)
    arrays.update({f"optim.{k}": v for k, v in ckpt.optim_state.items()})
    arrays.update({f"state.{i}": h for i, h in enumerate(ckpt.hidden)})
    arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint; any damage is a CharnnError that says what to do."""
    path = Path(path)
    if not path.is_file():
        raise CharnnError(f"checkpoint {path} not found; train first (charnn train CONFIG) or give --checkpoint")
    bad = f"checkpoint {path} is truncated or corrupted"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise CharnnError(f"{path} is not a charnn checkpoint (not an .npz archive)")
        with loaded as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise CharnnError(f"{bad} ({type(e).__name__}); use another checkpoint or train again") from None
    if "meta" not in arrays:
        raise CharnnError(f"{path} is not a charnn checkpoint (no meta entry)")
    try:
        meta = json.loads(str(arrays.pop("meta")))
    except ValueError:
        raise CharnnError(f"{bad} (unreadable meta); use another checkpoint or train again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CharnnError(f"{path} is not a charnn checkpoint (format {found!r})")
    if meta.get("version") != VERSION:
        raise CharnnError(
            f"{path} has checkpoint format version {meta.get('version')!r}; this charnn reads version "
            f"{VERSION}: use the charnn version that wrote it"
        )
    optim = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
    hidden_keys = sorted((k for k in arrays if k.startswith("state.")), key=lambda k: int(k.split(".")[1]))
    hidden = [arrays[k] for k in hidden_keys]
    params = {k: v for k, v in arrays.items() if not k.startswith(("optim.", "state."))}
    _check_params(path, params, meta)
    return Checkpoint(params=params, meta=meta, optim_state=optim, hidden=hidden)


def _check_params(path: Path, params: dict[str, np.ndarray], meta: dict) -> None:
    try:
        cfg = meta["config"]["model"]
        expected = model.param_shapes(len(meta["vocab"]), cfg["hidden_size"], cfg["num_layers"], cfg.get("cell", "rnn"))
    except (KeyError, TypeError):
        raise CharnnError(f"checkpoint {path} has incomplete metadata; use another checkpoint") from None
    got = {k: v.shape for k, v in params.items()}
    if got != expected:
        raise CharnnError(f"checkpoint {path} does not hold the parameters its config describes; it is corrupted")
    try:
        model.check_finite(params)
    except CharnnError as e:
        raise CharnnError(f"checkpoint {path}: {e}") from None


def most_recent(runs_dir: str | Path = "runs", name: str = "best.npz") -> Path:
    """`name` in the most recently written run under runs_dir (the default for sample and eval)."""
    found = sorted(Path(runs_dir).glob(f"*/{name}"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CharnnError(
            f"no checkpoint found under {runs_dir}/; train first (charnn train configs/hello.yaml) "
            "or give --checkpoint PATH"
        )
    return found[-1]
