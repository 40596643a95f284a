"""Self-contained checkpoints: one .npz of plain arrays plus JSON metadata, no pickle.

Layout (keys of the .npz):
    rnn.{l}.W_xh ... head.b_y   model parameters (names of charnn.model.param_shapes)
    optim.<slot>.<param>, optim.t  optimizer running state
    state.{l}                   hidden state carried into the next training chunk, (B, H)
    meta                        JSON text: format, version, vocab, config, step, ...
Writes are atomic: a temporary file in the same folder, flushed, fsynced, then renamed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charnn import __version__, model
from charnn.errors import CharnnError

FORMAT = "charnn-checkpoint"
VERSION = 1


class NonFiniteError(CharnnError):
    """A checkpoint would hold NaN or infinity: it is never written."""


@dataclass
class Progress:
    """A run's scalar progress: what, besides arrays and the RNG, a resume needs to continue exactly."""

    step: int = 0
    smooth_loss: float | None = None  # exponential average of the training loss
    best_smooth_loss: float | None = None  # its lowest value: the divergence guard's reference
    best_loss: float | None = None  # the score best.npz was kept for (validation, else smoothed training)
    best_step: int | None = None  # the step best.npz holds
    val_loss: float | None = None  # the last validation loss
    clip_count: int = 0
    elapsed_s: float = 0.0  # wall-clock training time, summed over resumes
    history: list = field(default_factory=list)  # the evaluation records


def training_meta(vocab_chars, config: dict, rng_state: dict, progress: Progress, chars_per_step: int,
                  corpus_sha256: str | None = None) -> dict:
    """The JSON metadata of a training checkpoint (the README's checkpoint table lists the keys)."""
    return dict(
        dataclasses.asdict(progress),
        charnn_version=__version__,
        vocab=list(vocab_chars),
        config=config,
        corpus_sha256=corpus_sha256,  # the training text's bytes, so its splits can be found again
        data_position=progress.step,  # chunks consumed: the batcher serves chunk `step` next
        chars=progress.step * chars_per_step,
        rng_state=rng_state,
        best_val_loss=progress.best_loss if progress.val_loss is not None else None,
    )


def progress_from(meta: dict) -> Progress:
    """The Progress a checkpoint's meta records (keys a version did not write take their defaults)."""
    return Progress(**{f.name: meta[f.name] for f in dataclasses.fields(Progress) if f.name in meta})


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
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise NonFiniteError(f"{name} holds NaN or infinite values; {path} was not written")
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
    if path.is_dir():
        hint = f" such as {path / 'best.npz'}" if (path / "best.npz").is_file() else ""
        raise CharnnError(f"{path} is a directory; give a checkpoint file{hint}")
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
