"""A run directory: config.yaml, metrics.jsonl, latest.npz and best.npz, owned by one process.

A lock held for the whole run keeps two processes from training into the same directory;
files are replaced atomically, and temporary files a killed process left behind are
removed when the run is next started.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import shlex
from collections.abc import Iterator
from pathlib import Path

from charnn.training import checkpoint
from charnn.config import Config, dump_yaml
from charnn.errors import CharnnError, file_errors
from charnn.files import write_text_atomically

CHECKPOINTS = ("latest.npz", "best.npz")
OWN_FILES = CHECKPOINTS + ("metrics.jsonl", "config.yaml", "samples.jsonl")
LOCK_NAME = ".lock"


class RunDir:
    """The files of one run, and the lock that says a process is training into them."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.latest = self.path / "latest.npz"
        self.best = self.path / "best.npz"
        self.metrics = self.path / "metrics.jsonl"
        self.config = self.path / "config.yaml"
        self.samples = self.path / "samples.jsonl"

    def resume_command(self) -> str:
        """The command that continues exactly this run (its resolved config is in the directory)."""
        return f"charnn train --resume {shlex.quote(str(self.path))}"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the directory's lock; another process holding it is a one-line error."""
        with file_errors(f"use run directory {self.path}", "choose another with --run-dir or --set run.name=..."):
            self.path.mkdir(parents=True, exist_ok=True)
            lock = open(self.path / LOCK_NAME, "a+b")
        with lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CharnnError(
                    f"run directory {self.path} is in use by another charnn process; wait for it to finish, "
                    "or choose another run with --set run.name=..."
                ) from None
            except OSError as e:
                if e.errno != errno.ENOLCK:  # a file system without locks: go on unguarded
                    raise
            yield

    def start(self, *, resume: bool, force: bool) -> None:
        """Check the directory suits a fresh run (or a resumed one) and clean it up."""
        with file_errors(f"use run directory {self.path}", "choose another with --run-dir"):
            if resume:
                if not self.latest.exists():
                    raise CharnnError(
                        f"nothing to resume: {self.latest} does not exist; start the run without --resume, "
                        "or give the directory of the run to continue (charnn train --resume RUN_DIR)"
                    )
            elif any(p.name in OWN_FILES for p in self.path.iterdir()):
                if not force:
                    raise CharnnError(
                        f"run directory {self.path} already exists; use --resume to continue it, --force to "
                        "overwrite it, or choose another with --run-dir or --set run.name=..."
                    )
                for name in OWN_FILES:
                    (self.path / name).unlink(missing_ok=True)
            self.remove_stale_temporaries()

    def write_config(self, config: Config) -> None:
        """The resolved config, from which `charnn train --resume DIR` continues the run."""
        with file_errors(f"write {self.config}", "check the disk"):
            write_text_atomically(self.config, dump_yaml(config))

    def save(self, path: Path, ckpt: checkpoint.Checkpoint) -> None:
        with file_errors(f"write checkpoint {path}", "the previous one is intact"):
            checkpoint.save(path, ckpt)

    def remove_stale_temporaries(self) -> None:
        """Temporary files of a training process killed mid-write (ours: we hold the lock; a report
        being written into the directory meanwhile is not the trainer's and is left alone)."""
        for name in OWN_FILES:
            for path in self.path.glob(f".{name}.*.tmp"):
                with contextlib.suppress(OSError):
                    path.unlink()

    def log(self, record: dict) -> None:
        """Append one line to metrics.jsonl."""
        with file_errors(f"write {self.metrics}", "check the disk"), open(self.metrics, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def log_sample(self, record: dict) -> None:
        """Append one training preview to samples.jsonl."""
        with file_errors(f"write {self.samples}", "check the disk"), open(self.samples, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")

    def trim_metrics(self, step: int) -> None:
        """On resume, drop log lines written after the checkpoint (they will be written again)."""
        for path in (self.metrics, self.samples):
            if not path.exists():
                continue
            kept = []
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    if json.loads(line)["step"] <= step:
                        kept.append(line)
                except (ValueError, KeyError, TypeError):
                    pass  # a line cut short by a crash
            with file_errors(f"write {path}", "check the disk"):
                write_text_atomically(path, "".join(line + "\n" for line in kept))


def training_target(path: str | Path | None, overrides: list[str], *, resume: bool, run_dir: str | Path | None,
                    data: str | Path | None = None, minutes: float | None = None) -> tuple[Config, Path | None]:
    """(config, run directory) for `charnn train [PATH] [--data FILE] [--minutes M]`.

    PATH is a config file, or with --resume a run directory; without PATH, --data FILE trains
    the built-in text preset on FILE. --data replaces data.path; --minutes sets train.max_minutes,
    and with --resume gives the run that many minutes more than it has trained.
    """
    from charnn import presets
    from charnn.settings import load_config

    if minutes is not None and not minutes > 0:
        raise CharnnError(f"--minutes must be > 0 (got {minutes:g})")
    if path is None and data is None:
        raise CharnnError("give a config (charnn train CONFIG.yaml) or a text to train on (charnn train --data FILE)")
    values = {"data.path": (str(Path(data).absolute()), f"--data {data}")} if data is not None else {}

    def configured(extra: dict) -> Config:
        if config_file is None:
            return presets.for_text(data, overrides, extra)
        return load_config(config_file, overrides, values={**values, **extra})

    config_file, folder = (None, None) if path is None else _config_and_folder(Path(path), resume, run_dir)
    if folder is None and run_dir is not None:
        folder = Path(run_dir)
    cfg = configured({})
    if config_file is None and resume:  # --data FILE --resume: the run continues with the config it saved
        saved = (folder or Path(cfg.run.dir) / cfg.run.name) / "config.yaml"
        if saved.is_file():
            config_file, folder = saved, saved.parent
            cfg = configured({})
    if minutes is not None:
        total = minutes + (_trained_minutes(folder or Path(cfg.run.dir) / cfg.run.name) if resume else 0.0)
        cfg = configured({"train.max_minutes": (total, f"--minutes {minutes:g}")})
    return cfg, folder


def _config_and_folder(path: Path, resume: bool, run_dir) -> tuple[Path, Path | None]:
    """The config file to read and the run directory to use, for `charnn train PATH`."""
    from charnn import presets

    if not path.is_dir():
        if path.is_file() and not presets.looks_like_config(path):
            raise CharnnError(f"{path} is not a YAML config; to train on this text: "
                              f"charnn train --data {shlex.quote(str(path))}")
        return path, None
    if not resume:
        raise CharnnError(f"{path} is a directory; to continue the run in it: charnn train --resume {shlex.quote(str(path))}")
    if run_dir is not None and Path(run_dir).resolve() != path.resolve():
        raise CharnnError(f"give the run to resume once: {path} or --run-dir {run_dir}, not both")
    if not (path / "config.yaml").is_file():
        raise CharnnError(f"{path} is not a run directory (it has no config.yaml); give a config file, "
                          "or the directory of a run to resume")
    return path / "config.yaml", path


def _trained_minutes(folder: Path) -> float:
    """Minutes of training the run in `folder` has done (0 when it has no checkpoint yet)."""
    latest = folder / "latest.npz"
    if not latest.is_file():
        return 0.0
    meta, _ = checkpoint.inspect(latest)
    elapsed = meta.get("elapsed_s", 0.0)
    return float(elapsed) / 60 if isinstance(elapsed, (int, float)) else 0.0
