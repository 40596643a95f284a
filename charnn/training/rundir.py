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
from charnn.errors import ParameterError, file_errors
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
                raise ParameterError("run directory {path} is in use by another charnn process; wait for it to "
                                     "finish, or choose another run with {run_name}", path=self.path) from None
            except OSError as e:
                if e.errno != errno.ENOLCK:  # a file system without locks: go on unguarded
                    raise
            yield

    def start(self, *, resume: bool, force: bool) -> None:
        """Check the directory suits a fresh run (or a resumed one) and clean it up."""
        with file_errors(f"use run directory {self.path}", "choose another with --run-dir"):
            if resume:
                if not self.latest.exists():
                    raise ParameterError("nothing to resume: {latest} does not exist; start the run without {resume}, "
                                         "or give the directory of the run to continue ({resume_dir})",
                                         latest=self.latest)
            elif any(p.name in OWN_FILES for p in self.path.iterdir()):
                if not force:
                    raise ParameterError("run directory {path} already exists; use {resume} to continue it, {force} "
                                         "to overwrite it, or choose another with {run_dir} or {run_name}",
                                         path=self.path)
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
