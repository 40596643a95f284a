"""charnn.train and the Run it returns: one training run, its directory and its numbers."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from charnn.api.configs import ConfigSource
from charnn.config import Config
from charnn.training.loop import Callback, TrainingInterrupted, TrainingStopped, TrainResult

if TYPE_CHECKING:
    from charnn.api.models import Model

LN2 = math.log(2)


@dataclass
class Run:
    """A training run: where it is, how far it got and how well it did.

    stopped says why it ended: "steps" or "time" (its budget), "interrupted" (Ctrl-C, or
    "interrupt kernel" in Jupyter: latest.npz was saved and `charnn.train(run.dir, resume=True)`
    continues it). note is set when a resumed run had nothing left to do.

    Examples:
        >>> run = charnn.train(cfg, force=True, progress=False)
        >>> run.stopped, run.steps
        ('steps', 300)
    """

    dir: Path
    steps: int
    chars: int
    best_val_loss: float | None  # nats/char, the lowest validation loss (None without a validation split)
    last_val_loss: float | None
    train_loss: float | None  # smoothed, at the end
    elapsed_s: float
    clip_fraction: float
    stopped: str  # steps | time | interrupted
    note: str | None = None

    @classmethod
    def _of(cls, result: TrainResult) -> "Run":
        return cls(Path(result.run_dir), result.step, result.chars, result.best_val_loss, result.val_loss,
                   result.train_loss, result.elapsed_s, result.clip_fraction, result.stop_reason, result.note)

    @property
    def best_val_bpc(self) -> float | None:
        return None if self.best_val_loss is None else self.best_val_loss / LN2

    @property
    def chars_per_s(self) -> float:
        return self.chars / max(self.elapsed_s, 1e-9)

    @property
    def checkpoint(self) -> Path:
        """best.npz: the model with the lowest validation loss (or training loss without validation)."""
        return self.dir / "best.npz"

    @property
    def metrics(self) -> list[dict]:
        """Every line of the run's metrics.jsonl: training steps (train_loss, lr, grad_norm, ...) and
        evaluations (val_loss, val_bpc), each with its step; read when asked."""
        path = self.dir / "metrics.jsonl"
        if not path.exists():
            return []
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:  # a line cut short by a crash
                continue
        return records

    def model(self, which: str = "best") -> Model:
        """The trained model: best.npz (which="best") or latest.npz (which="latest")."""
        from charnn.api.models import load
        from charnn.errors import ParameterError

        if which not in ("best", "latest"):
            raise ParameterError("{which} must be 'best' or 'latest' (got {got!r})", got=which)
        return load(self.dir / f"{which}.npz")

    def to_dict(self) -> dict:
        """The keys `charnn train --json` prints."""
        best = self.checkpoint
        return {"run_dir": str(self.dir), "steps": self.steps, "chars": self.chars, "best_val_loss": self.best_val_loss,
                "last_val_loss": self.last_val_loss, "best_val_bpc": self.best_val_bpc,
                "elapsed_s": round(self.elapsed_s, 3), "chars_per_s": round(self.chars_per_s, 1),
                "stopped": self.stopped, "checkpoint": str(best) if best.exists() else None}

    def _repr_html_(self) -> str:
        from charnn.api import html

        return html.run(self)


def _progress(progress) -> tuple[Callback, callable]:
    """(the callback to train with, what closes it) for train's `progress` argument."""
    if isinstance(progress, Callback):
        return progress, lambda: None
    if not progress:
        return Callback(), lambda: None
    from charnn.api.progress import NotebookProgress, TrainProgress, in_notebook

    if in_notebook():
        shown = NotebookProgress()
    else:
        from rich.console import Console

        shown = TrainProgress(Console(stderr=True, highlight=False))
    return shown, shown.close


def train(config: ConfigSource, run_dir: str | Path | None = None, resume: bool = False,
          force: bool = False, progress: bool | Callback = True) -> Run:
    """Train a model; returns the Run (its directory holds config.yaml, metrics.jsonl, latest.npz and
    best.npz).

    config: a Config (charnn.load_config), or what load_config takes: a YAML file, a run directory
    (with resume=True: the run to continue), a dict. run_dir: default <run.dir>/<run.name>.
    resume: continue the run exactly from its latest.npz. force: overwrite an existing run.
    progress: True shows it (a live display in Jupyter, a bar in a terminal), False shows nothing,
    or give a charnn Callback. Ctrl-C (or "interrupt kernel") saves latest.npz and returns the Run
    with stopped == "interrupted"; a loss that becomes NaN or runs away raises TrainingDiverged (a
    CharnnError naming the checkpoints it kept; its .run says how far the run got).

    Examples:
        >>> hi = {"data": {"text": "hello", "val_fraction": 0}, "model": {"hidden_size": 16},
        ...       "train": {"batch_size": 1, "seq_len": 4, "steps": 50}, "run": {"name": "hi"}}
        >>> charnn.train(hi, progress=False).dir.name
        'hi'
    """
    from charnn.api.configs import load_config
    from charnn.training.loop import train as run_training

    if not isinstance(config, Config):
        if resume and run_dir is None and isinstance(config, (str, Path)) and Path(config).is_dir():
            run_dir = Path(config)  # the run to continue, with the config it saved
        config = load_config(config)
    callback, close = _progress(progress)
    try:
        result = run_training(config, run_dir, resume=resume, force=force, callback=callback)
    except TrainingInterrupted as e:
        if e.result is None:
            raise
        result = e.result
    except TrainingStopped as e:  # diverged: the error says which checkpoints were kept; e.run how far it got
        e.run = Run._of(e.result) if e.result is not None else None
        raise
    finally:
        close()
    return Run._of(result)


def most_recent(runs_dir: str | Path = "runs", name: str = "best.npz") -> Path:
    """`name` (best.npz, latest.npz, config.yaml) in the most recently written run under runs_dir: the
    checkpoint the commands use when none is given. A CharnnError says how to make one when there is none."""
    from charnn.training import checkpoint

    return checkpoint.most_recent(runs_dir, name)
