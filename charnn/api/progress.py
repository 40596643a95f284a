"""Training progress as a person watches it: a live bar in a terminal, plain periodic lines in a log,
one updating display in a Jupyter cell. Each is a charnn Callback (charnn/training/loop.py).

A run with a time budget (train.max_minutes) shows its progress in minutes; one without, in steps.
"""

from __future__ import annotations

import html
import math
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from charnn.training.loop import Callback

LN2 = math.log(2)


def _stats(m: dict, last_val: float | None) -> str:
    val = "" if last_val is None else f" val {last_val:.3f} ({last_val / LN2:.2f} bpc)"
    return (f"loss {m['smooth_loss']:.3f}{val} |g| {m['grad_norm']:.2f}"
            f"{'*' if m['clipped'] else ''} {m['chars_per_s'] / 1000:.1f}k chars/s")


def _start_line(info: dict) -> str:
    verb = "resuming" if info["resumed"] else "training"
    return (f"{verb} {info['run_dir']}: {info['params']:,} parameters, vocabulary {info['vocab_size']}, "
            f"{info['train_chars']:,} train / {info['val_chars']:,} val characters")


class _Budget:
    """Where a run stands against its budget: minutes when it has a time budget, else steps."""

    def __init__(self, info: dict):
        self.by_time = bool(info.get("max_minutes"))
        self.total = info["max_minutes"] * 60 if self.by_time else info["steps"]
        self.done = info.get("start_elapsed_s", 0.0) if self.by_time else info["start_step"]

    def update(self, m: dict) -> float:
        self.done = min(self.total, m["elapsed_s"] if self.by_time else m["step"])
        return self.done


class TrainProgress(Callback):
    """A live bar when the console is a terminal, plain lines otherwise; quiet shows neither.

    Plain lines (logs, CI) come at most every `plain_every_s` seconds, and only at logged steps, each
    with the validation loss as of its step; close() adds the last step's line. Nothing is wrapped.
    """

    def __init__(self, console: Console, quiet: bool = False, plain_every_s: float = 5.0):
        self.console, self.quiet = console, quiet
        self.live = console.is_terminal and not quiet
        self.plain_every_s = plain_every_s
        self._last_plain = -math.inf
        self._progress: Progress | None = None
        self._task = None
        self._last_val: float | None = None
        self._budget: _Budget | None = None
        self._pending: dict | None = None  # a plain line's step, waiting for that step's evaluation
        self._latest: dict | None = None  # the last step or evaluation reported
        self._shown_step: int | None = None
        self._closed = False

    def _print(self, text: str, **kwargs) -> None:
        self.console.print(text, soft_wrap=True, **kwargs)  # never cut at the console's width

    def on_message(self, text: str) -> None:
        if not self.quiet:
            self._flush()
            self._print(text, markup=False)

    def on_start(self, info: dict) -> None:
        if self.quiet:
            return
        self._print(_start_line(info), markup=False)
        self._budget = _Budget(info)
        if self.live:
            unit = "minutes" if self._budget.by_time else "steps"
            # transient: stopped, the bar is erased, so nothing stale is left below the summary
            self._progress = Progress(
                TextColumn("[bold]step {task.fields[step]:,}"), BarColumn(), TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=self.console, transient=True,
            )
            self._task = self._progress.add_task(unit, total=self._budget.total, completed=self._budget.done,
                                                 stats="", step=info["start_step"])
            self._progress.start()

    def on_step(self, m: dict) -> None:
        if self.quiet:
            return
        if self._progress is not None:
            self._progress.update(self._task, completed=self._budget.update(m), stats=_stats(m, self._last_val),
                                  step=m["step"])
            return
        self._flush()
        self._latest = m
        if time.monotonic() - self._last_plain >= self.plain_every_s:
            self._last_plain = time.monotonic()
            self._pending = m  # printed once an evaluation at this step (the loop's next call) is in

    def on_eval(self, m: dict) -> None:
        if self._pending is not None and self._pending["step"] != m["step"]:
            self._flush()  # an earlier step's line shows the validation loss it had
        self._last_val = m["val_loss"]
        if self._progress is None and not self.quiet:
            self._latest = dict(self._latest or {}, **m) if (self._latest or {}).get("step") == m["step"] else m
            self._flush()

    def on_sample(self, step: int, text: str) -> None:
        if self.quiet:
            return
        self._flush()
        if self._progress is None and self._latest is not None and self._latest["step"] == step != self._shown_step:
            self._line(self._latest)  # the numbers of the step the sample comes from, first
        self._print(f"[dim]sample at step {step}:[/dim]", markup=True)
        self._print(text, markup=False, highlight=False)

    def _flush(self) -> None:
        """Print the plain line waiting for its step's evaluation, if any."""
        if self._pending is not None:
            self._line(self._pending)
            self._pending = None

    def _line(self, m: dict) -> None:
        what = _stats(m, self._last_val) if "smooth_loss" in m else \
            f"val {m['val_loss']:.4f} nats/char ({m['val_bpc']:.3f} bits/char)"  # a final evaluation, no step
        self._print(f"step {m['step']}: {what}", markup=False)
        self._shown_step = m["step"]

    def close(self) -> None:
        """Stop the bar (erasing it) or print the last plain line: what is shown ends where the run did."""
        if self._closed:
            return
        self._closed = True
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif not self.quiet:
            self._flush()
            if self._latest is not None and self._latest["step"] != self._shown_step:
                self._line(self._latest)


class NotebookProgress(Callback):
    """One display in a Jupyter cell, updated in place (at most every `every_s` seconds): a bar, the
    losses and speed, and the latest sample; the cell does not fill with lines."""

    def __init__(self, every_s: float = 0.5):
        from IPython.display import HTML, display

        self._html, self.every_s = HTML, every_s
        self._handle = display(HTML("<i>charnn: starting</i>"), display_id=True)
        self._last, self._head, self._stats, self._sample = 0.0, "", "", ""
        self._last_val, self._budget, self._step = None, None, 0

    def on_message(self, text: str) -> None:
        self._head = text
        self._show(force=True)

    def on_start(self, info: dict) -> None:
        self._head, self._budget, self._step = _start_line(info), _Budget(info), info["start_step"]
        self._show(force=True)

    def on_step(self, m: dict) -> None:
        self._step, self._stats = m["step"], _stats(m, self._last_val)
        self._budget.update(m)
        self._show()

    def on_eval(self, m: dict) -> None:
        self._last_val = m["val_loss"]

    def on_sample(self, step: int, text: str) -> None:
        self._sample = f"sample at step {step}: {text}"

    def close(self) -> None:
        self._show(force=True)

    def _show(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last < self.every_s:
            return
        self._last = time.monotonic()
        b = self._budget
        bar = "" if b is None else (f"<progress value='{b.done:.0f}' max='{b.total:.0f}' style='width:40%'></progress> "
                                    + (f"{b.done / 60:.1f} of {b.total / 60:.1f} min" if b.by_time
                                       else f"step {b.done:,} of {b.total:,}"))
        step = f" (step {self._step:,})" if b is not None and b.by_time else ""
        sample = f"<pre style='white-space:pre-wrap'>{html.escape(self._sample)}</pre>" if self._sample else ""
        self._handle.update(self._html(f"<div>{html.escape(self._head)}</div><div>{bar}{step} "
                                       f"{html.escape(self._stats)}</div>{sample}"))


def in_notebook() -> bool:
    """Whether we run inside a Jupyter kernel (where a cell can hold a live display)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
