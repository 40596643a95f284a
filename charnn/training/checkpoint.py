"""Self-contained checkpoints: one .npz of plain arrays plus JSON metadata, no pickle.

Layout (keys of the .npz):
    rnn.{l}.W_xh ... head.b_y   model parameters (names of charnn.nn.model.param_shapes)
    optim.<slot>.<param>, optim.t  optimizer running state
    state.{l}                   hidden state carried into the next training chunk, (B, H)
    meta                        JSON text: format, version, vocab, config, step, ...
Writes are atomic: a temporary file in the same folder, flushed, fsynced, then renamed.
Reads trust nothing: meta (bounded) comes first, and from its config the exact name, dtype
and shape of every member; each member's zip sizes and npy header are checked against that
before any array data is read (the zip side is charnn/npzsafe.py).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charnn import __version__, hints
from charnn.config import Config
from charnn.data.vocab import Vocab
from charnn.errors import CharnnError, ParameterError
from charnn.files import replaced_atomically
from charnn.nn import model
from charnn.nn.optim import OptimizerSpec, init_state
from charnn.settings import from_dict
from charnn.training import npzsafe

FORMAT = "charnn-checkpoint"
VERSION = 1
MAX_META_CHARS = 4_000_000  # 16 MB as numpy text; a long run's history is a small fraction of it


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
                  corpus_sha256: str | None = None, char_counts=None) -> dict:
    """The JSON metadata of a training checkpoint (the README's checkpoint table lists the keys)."""
    return dict(
        dataclasses.asdict(progress),
        charnn_version=__version__,
        vocab=list(vocab_chars),
        # how often each symbol occurs in the corpus: a sample without a seed starts as the text does
        char_counts=None if char_counts is None else [int(n) for n in char_counts],
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
    """A checkpoint's arrays and metadata; `config` and `vocab` are typed, built once from meta
    (by `load`, which checks them; on first use for one made in memory)."""

    params: dict[str, np.ndarray]
    meta: dict
    optim_state: dict[str, np.ndarray] = field(default_factory=dict)
    hidden: list[np.ndarray] = field(default_factory=list)
    path: Path | None = None  # the file it was loaded from

    @functools.cached_property
    def config(self) -> Config:
        """The resolved config it was trained with."""
        return from_dict(self.meta["config"], source=f"checkpoint {self.name}")

    @functools.cached_property
    def vocab(self) -> Vocab:
        return Vocab(tuple(self.meta["vocab"]))

    @property
    def vocab_chars(self) -> list[str]:
        return self.meta["vocab"]

    @property
    def char_counts(self) -> list[int] | None:
        """Occurrences of each symbol in the training corpus (None in checkpoints written before they were kept)."""
        return self.meta.get("char_counts")

    @property
    def name(self) -> str:
        """How messages name it: its path, or "the model" for one built in memory."""
        return str(self.path) if self.path is not None else "the model"

    @property
    def cell(self) -> str:
        return self.config.model.cell


def save(path: str | Path, ckpt: Checkpoint) -> None:
    """Write atomically: a crash at any moment leaves the previous file at `path` intact."""
    path = Path(path)
    meta = dict(ckpt.meta, format=FORMAT, version=VERSION)
    arrays = dict(ckpt.params)
    arrays.update({f"optim.{k}": v for k, v in ckpt.optim_state.items()})
    dtype = next(iter(ckpt.params.values())).dtype if ckpt.params else np.float32
    arrays.update({f"state.{i}": h for i, h in enumerate(model.carry_for_file(ckpt.hidden, dtype))})
    for name, value in arrays.items():
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise NonFiniteError(f"{name} holds NaN or infinite values; {path} was not written")
    arrays = {k: np.asarray(v, order="C") for k, v in arrays.items()}  # load accepts C order only
    text = json.dumps(meta, ensure_ascii=False)
    if len(text) > MAX_META_CHARS:  # load would refuse it: say so now, while the previous file is intact
        raise CharnnError(f"checkpoint metadata for {path} is {len(text):,} characters, more than the "
                          f"{MAX_META_CHARS:,} a checkpoint may hold; raise run.eval_every "
                          "(fewer evaluations in the history)")
    arrays["meta"] = np.array(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replaced_atomically(path, "wb") as f:
        np.savez(f, **arrays)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def load(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint; any damage is a CharnnError that says what to do.

    Every member's name, dtype, shape and size is judged against what `meta` describes before
    any array data is read, so a hostile file is refused at the cost of reading its headers.
    """
    path = Path(path)
    with _open(path) as archive:
        meta, headers, cfg = _check_layout(path, archive)
        arrays = {}
        for key, header in headers.items():
            try:
                arrays[key] = archive.read(f"{key}.npy", header)
            except npzsafe.ArchiveError as e:
                raise _corrupted(path, e) from None
    optim = {k[len("optim."):]: v for k, v in arrays.items() if k.startswith("optim.")}
    hidden = [arrays[f"state.{layer}"] for layer in range(sum(k.startswith("state.") for k in arrays))]
    hidden = model.carry_from_file(hidden, cfg.model.cell)
    params = {k: v for k, v in arrays.items() if not k.startswith(("optim.", "state."))}
    try:
        model.check_finite(params)
    except CharnnError as e:
        raise CharnnError(f"checkpoint {path}: {e}") from None
    ckpt = Checkpoint(params=params, meta=meta, optim_state=optim, hidden=hidden, path=path)
    ckpt.config = cfg  # checked while reading the headers: not parsed twice
    return ckpt


def inspect(path: str | Path) -> tuple[dict, dict[str, npzsafe.Header]]:
    """(meta, key -> npy header) of a checkpoint, with every check of `load` but no array data read."""
    path = Path(path)
    with _open(path) as archive:
        return _check_layout(path, archive)[:2]


def describe(path: str | Path) -> dict:
    """What a checkpoint holds, from its headers and meta alone (checked as `load` checks; weights unread)."""
    path = Path(path)
    with _open(path) as archive:
        meta, headers, cfg = _check_layout(path, archive)
    step = meta.get("step")
    best = meta.get("best_val_loss")
    version = meta.get("charnn_version")
    return {
        "path": str(path),
        "file_bytes": path.stat().st_size,
        "format": FORMAT,
        "format_version": meta["version"],
        "charnn_version": version if isinstance(version, str) else None,
        "cell": cfg.model.cell,
        "vocab_size": len(meta["vocab"]),
        "hidden_size": cfg.model.hidden_size,
        "num_layers": cfg.model.num_layers,
        "dtype": cfg.model.dtype,
        "parameters": sum(_prod(h.shape) for k, h in headers.items() if not k.startswith(("optim.", "state."))),
        "vocabulary": meta["vocab"],
        "step": step,
        "chars_seen": step * cfg.train.batch_size * cfg.train.seq_len if step is not None else None,
        "best_val_loss": best if isinstance(best, (int, float)) and not isinstance(best, bool) else None,
        "val_loss": _number(meta.get("val_loss")),  # this checkpoint's own validation loss, when it was written
        "elapsed_s": _number(meta.get("elapsed_s")),  # wall-clock training time, summed over resumes
        "config": meta["config"],
    }


def _open(path: Path) -> npzsafe.Archive:
    if path.is_dir():
        hint = f" such as {path / 'best.npz'}" if (path / "best.npz").is_file() else ""
        raise CharnnError(f"{path} is a directory; give a checkpoint file{hint}")
    if not path.is_file():
        raise CharnnError(f"checkpoint {path} not found; check the path")
    try:
        return npzsafe.Archive(path)
    except npzsafe.ArchiveError as e:
        if not _starts_as_zip(path):  # not a checkpoint cut short: another kind of file altogether
            raise CharnnError(f"{path} is not a charnn checkpoint (not a zip archive); give the best.npz or "
                              "latest.npz of a run") from None
        raise _corrupted(path, e) from None


def _starts_as_zip(path: Path) -> bool:
    """Whether the file begins as a zip archive does (an empty one counts: a copy cut to nothing)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head in (b"", b"PK\x03\x04", b"PK\x05\x06")


def _corrupted(path: Path, why) -> CharnnError:
    return CharnnError(f"checkpoint {path} is truncated or corrupted ({why}); use another checkpoint or train again")


def _check_layout(path: Path, archive: npzsafe.Archive) -> tuple[dict, dict[str, npzsafe.Header], Config]:
    """Meta, then every member's zip size and npy header against the arrays meta says it holds;
    returns (meta, headers, the typed config)."""
    meta = _read_meta(path, archive)
    names = set(archive.names)
    expected, cfg = _expected_arrays(path, meta, max_layers=len(names))
    missing = [key for key in expected if f"{key}.npy" not in names]
    if missing:
        raise _mismatch(path, f"member {missing[0] + '.npy'!r} is missing")
    extra = sorted(names - {f"{key}.npy" for key in expected} - {"meta.npy"})
    if extra:
        raise _mismatch(path, f"it holds an unexpected member {extra[0]!r}")
    for key, (dtype, shape) in expected.items():  # sizes from the zip directory: nothing opened yet
        nbytes, size = dtype.itemsize * _prod(shape), archive.size(f"{key}.npy")
        if not nbytes < size <= nbytes + npzsafe.MAX_NPY_HEADER:
            raise _mismatch(path, f"member {key + '.npy'!r} is {size:,} bytes, its config needs {dtype} {shape}")
    headers = {}
    for key, (dtype, shape) in expected.items():
        try:
            header = archive.header(f"{key}.npy")
        except npzsafe.ArchiveError as e:
            raise _corrupted(path, e) from None
        if (header.dtype, header.shape, header.fortran_order) != (dtype, shape, False):
            order = ", Fortran order" if header.fortran_order else ""
            raise _mismatch(path, f"member {key + '.npy'!r} holds {header.dtype} {header.shape}{order}, "
                                  f"its config needs {dtype} {shape}")
        if archive.size(f"{key}.npy") != header.offset + header.nbytes:
            raise _mismatch(path, f"member {key + '.npy'!r} holds bytes beyond its array")
        headers[key] = header
    return meta, headers, cfg


def _mismatch(path: Path, why: str) -> CharnnError:
    return CharnnError(f"checkpoint {path} does not hold what its config describes: {why}; "
                       "it is corrupted, use another checkpoint")


def _number(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _read_meta(path: Path, archive: npzsafe.Archive) -> dict:
    """The JSON metadata, read only once its stated size is known to be small."""
    if "meta.npy" not in archive.names:
        raise CharnnError(f"{path} is not a charnn checkpoint (no meta entry)")
    bad = f"checkpoint {path} is truncated or corrupted (unreadable meta"
    if archive.size("meta.npy") > npzsafe.MAX_NPY_HEADER + 4 * MAX_META_CHARS:
        raise CharnnError(f"{bad}: {archive.size('meta.npy'):,} bytes, more than {4 * MAX_META_CHARS:,} "
                          "accepted); use another checkpoint or train again")
    try:
        header = archive.header("meta.npy")
        if header.dtype.kind != "U" or header.shape != ():
            raise npzsafe.ArchiveError(f"meta holds {header.dtype} {header.shape}, not text")
        meta = json.loads(str(archive.read("meta.npy", header)[()]))
    except (npzsafe.ArchiveError, ValueError, RecursionError) as e:
        raise CharnnError(f"{bad}: {npzsafe.one_line(e)}); use another checkpoint or train again") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CharnnError(f"{path} is not a charnn checkpoint (format {found!r})")
    if meta.get("version") != VERSION:
        raise CharnnError(
            f"{path} has checkpoint format version {meta.get('version')!r}; this charnn reads version "
            f"{VERSION}: use the charnn version that wrote it"
        )
    return meta


def _expected_arrays(path: Path, meta: dict, max_layers: int) -> tuple[dict[str, tuple[np.dtype, tuple[int, ...]]], Config]:
    """(key -> (dtype, shape) of every array a checkpoint with this meta holds (meta aside), its config).

    Parameters as model.param_shapes, optimizer slots as optim.init_state gives them, and one
    carried state per layer, (train.batch_size, state width). `max_layers` bounds the layer
    count before any per-layer work, since meta may claim anything.
    """
    vocab = meta.get("vocab")
    if not isinstance(vocab, list) or not all(isinstance(c, str) and len(c) == 1 for c in vocab):
        raise CharnnError(f"checkpoint {path} has incomplete metadata (vocab); use another checkpoint")
    if "config" not in meta or not isinstance(meta.get("step", 0), int) or meta.get("step", 0) < 0:
        raise CharnnError(f"checkpoint {path} has incomplete metadata (config or step); use another checkpoint")
    counts = meta.get("char_counts")
    if counts is not None and not (isinstance(counts, list) and len(counts) == len(vocab) and
                                   all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in counts)):
        raise CharnnError(f"checkpoint {path} has damaged metadata (char_counts); use another checkpoint")
    cfg = from_dict(meta["config"], source=f"checkpoint {path}")
    m, t = cfg.model, cfg.train
    if m.num_layers > max_layers:
        raise _mismatch(path, f"its config has {m.num_layers} layers, more than it has members")
    dtype = np.dtype(m.dtype)
    try:
        shapes = model.param_shapes(len(vocab), m.hidden_size, m.num_layers, m.cell, m.window)
    except CharnnError as e:
        raise CharnnError(f"checkpoint {path}: {e}") from None
    expected = {key: (dtype, shape) for key, shape in shapes.items()}
    # the optimizer's slots, learnt from init_state on empty stand-ins (nothing large is allocated)
    for key, value in init_state(OptimizerSpec(optimizer=t.optimizer), {k: np.empty(0, dtype) for k in shapes}).items():
        param = key.partition(".")[2]
        expected[f"optim.{key}"] = (value.dtype, shapes[param] if param in shapes else value.shape)
    for layer, width in enumerate(model.carried_widths(m.cell, m.hidden_size, m.num_layers, m.window)):
        expected[f"state.{layer}"] = (dtype, (t.batch_size, width))
    return expected, cfg


def most_recent(runs_dir: str | Path = "runs", name: str = "best.npz") -> Path:
    """`name` in the run under runs_dir that was active last (the default for sample and eval)."""
    found = sorted(Path(runs_dir).glob(f"*/{name}"), key=_last_active)
    if not found:  # {checkpoint}: how the caller takes one, e.g. --checkpoint PATH
        raise ParameterError("no checkpoint found under {runs_dir}/; train first ({train}) or give one: {checkpoint}",
                             runs_dir=runs_dir, train=hints.train_first())
    return found[-1]


def _last_active(path: Path) -> float:
    """When the run holding `path` last wrote a checkpoint: resumed, it rewrites latest.npz, and
    best.npz only when the validation loss improves."""
    return max(p.stat().st_mtime for p in (path, path.parent / "latest.npz", path.parent / "best.npz") if p.exists())
