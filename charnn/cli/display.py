"""Terminal rendering with rich: training progress on stderr, tables, one-line errors."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

LN2 = math.log(2)  # nats -> bits



def _console(stderr: bool) -> Console:
    """A console that honours NO_COLOR fully (no bold either) and never wraps plain (non-terminal) output."""
    plain = bool(os.environ.get("NO_COLOR"))
    console = Console(stderr=stderr, highlight=False, color_system=None if plain else "auto", soft_wrap=True)
    if not console.is_terminal:
        console.width = 200  # logs and pipes: tables as wide as they need, lines never cut at 80 columns
    return console


def stderr_console() -> Console:
    return _console(stderr=True)


def stdout_console() -> Console:
    return _console(stderr=False)


def use_plain_help_when_no_color() -> None:
    """NO_COLOR also turns off the bold and colours of `--help` (typer draws it with its own console)."""
    if os.environ.get("NO_COLOR"):
        import typer.rich_utils

        typer.rich_utils.COLOR_SYSTEM = None


def print_error(message: str) -> None:
    stderr_console().print(f"[bold red]error:[/] {escape(message)}", markup=True)


def when_written(path: Path) -> str:
    """'2026-12-03 14:20, 3 minutes ago': a file's modification time, absolute and relative."""
    mtime = path.stat().st_mtime
    ago = max(0.0, time.time() - mtime)
    relative = (f"{ago:.0f} s ago" if ago < 90 else f"{ago / 60:.0f} minutes ago" if ago < 5400
                else f"{ago / 3600:.0f} hours ago" if ago < 172800 else f"{ago / 86400:.0f} days ago")
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(mtime))}, {relative}"


def print_used(path: Path, val_loss, what: str = "the most recent run's best checkpoint",
               other: str = "--checkpoint PATH") -> None:
    """The one stderr line a command prints when it picked a checkpoint (or run) by itself."""
    loss = "no validation loss" if isinstance(val_loss, bool) or not isinstance(val_loss, (int, float)) else \
        f"validation loss {val_loss:.4f} nats/char"
    stderr_console().print(f"using {path}, {what} (written {when_written(path)}; {loss}); "
                           f"choose another with {other}", markup=False)


def print_hint(message: str) -> None:
    """A line that follows an error, e.g. the command that resumes an interrupted run."""
    stderr_console().print(message, markup=False)


class TextStream:
    """Generated text to stdout as it is made: each character on a terminal, per line or 4 KiB in a pipe.

    On leaving (also by Ctrl-C or an exception) whatever was generated is flushed, so an
    interrupted sample keeps everything written so far.
    """

    BLOCK = 4096

    def __init__(self, stdout):
        self._out = stdout.buffer
        self._live = stdout.isatty()
        self._pending = 0
        stdout.flush()

    def write(self, text: str) -> None:
        self._out.write(text.encode("utf-8", errors="replace"))
        self._pending += len(text)
        if self._live or "\n" in text or self._pending >= self.BLOCK:
            self.flush()

    def line(self, text: str) -> None:
        self._out.write(text.encode("utf-8") + b"\n")
        self.flush()

    def end_line(self) -> None:
        self._out.write(b"\n")
        self.flush()

    def flush(self) -> None:
        self._out.flush()
        self._pending = 0

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc) -> None:
        self.flush()


def _fmt(value, spec=".3f") -> str:
    if value is not None and abs(value) >= 1e6:
        spec = ".4g"  # a runaway loss: no wall of digits
    return "-" if value is None else format(value, spec)


def key_value_table(title: str, rows, justify: str = "left") -> Table:
    """A two-column table, keys in bold; values are plain text (never read as rich markup)."""
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify=justify)
    for key, value in rows:
        table.add_row(Text(key), Text(value))
    return table


def summary_table(run) -> Table:
    """A charnn.Run as the table `charnn train` ends with."""
    rows = [
        ("run directory", str(run.dir)),
        ("steps", f"{run.steps:,} ({run.stopped})"),
        ("characters seen", f"{run.chars:,}"),
        ("train loss (smoothed)", f"{_fmt(run.train_loss, '.4f')} nats/char"),
        ("last val loss", "-" if run.last_val_loss is None else
         f"{_fmt(run.last_val_loss, '.4f')} nats/char ({_fmt(run.last_val_loss / LN2)} bits/char)"),
        ("best val loss", _fmt(run.best_val_loss, ".4f")),
        ("clipped steps", f"{100 * run.clip_fraction:.1f}%"),
        ("time", f"{run.elapsed_s:.1f} s ({run.chars_per_s:,.0f} chars/s)"),
    ]
    return key_value_table("training summary", rows)


_EVAL_ROWS = (("nats/char", "nats_per_char", ".4f"), ("bits/char", "bits_per_char", ".4f"),
              ("perplexity", "perplexity", ".3f"), ("characters predicted", "chars", ","))


def eval_table(name: str, result: dict) -> Table:
    rows = [(label, format(result[key], spec)) for label, key, spec in _EVAL_ROWS]
    if "dynamic_nats_per_char" in result:  # another protocol: the model adapts as it reads
        rows += [("dynamic evaluation, nats/char", f"{result['dynamic_nats_per_char']:.4f}"),
                 ("dynamic evaluation, bits/char", f"{result['dynamic_bits_per_char']:.4f}")]
    return key_value_table(f"loss of {name}", rows, justify="right")


def _log_bar(value: float, lo: float, hi: float, width: int = 24) -> str:
    """A bar whose length is proportional to log10(value) between lo and hi."""
    if not math.isfinite(value):
        return "█" * width + " inf"
    if value <= 0 or hi <= lo:
        return ""
    frac = (math.log10(value) - lo) / (hi - lo)
    return "█" * max(1, round(frac * width))


def gradient_tables(report, max_rows: int = 16) -> list:
    """Per layer: a table of the per-lag quantities with a log-scale bar, then the verdict."""
    out = []
    for layer in report.layers:
        T = len(layer.lag)
        rows = sorted({round(i * (T - 1) / max(1, max_rows - 1)) for i in range(min(T, max_rows))})
        positive = [v for v in layer.dL_ds if math.isfinite(v) and v > 0]
        lo = math.log10(min(positive)) - 0.3 if positive else 0.0
        hi = math.log10(max(positive)) if positive else 1.0
        table = Table(title=f"layer {layer.layer} ({layer.cell}): gradient flowing back k steps "
                      f"(mean of {report.windows} windows)", title_justify="left")
        lstm = layer.dL_dc is not None
        for name in ("lag k", "dL/ds", "jacobian", "contribution") + (("dL/dc", "cell path") if lstm else ()):
            table.add_column(name, justify="right")
        table.add_column("dL/ds, log scale")
        for k in rows:
            extra = (f"{layer.dL_dc[k]:.3e}", f"{layer.cell_path[k]:.3e}") if lstm else ()
            table.add_row(str(k), f"{layer.dL_ds[k]:.3e}", f"{layer.jacobian[k]:.3e}",
                          f"{layer.contribution[k]:.3e}", *extra, _log_bar(layer.dL_ds[k], lo, hi, 10 if lstm else 24))
        out.append(table)
        horizon = "beyond T" if layer.horizon is None else f"{layer.horizon} steps"
        colour = {"vanishing": "yellow", "short memory": "yellow", "exploding": "red", "healthy": "green"}[layer.verdict]
        radius = "" if layer.spectral_radius is None else f"spectral radius {layer.spectral_radius:.3f}, "
        out.append(
            f"[bold {colour}]{layer.verdict}[/] ({escape(report.said())}): memory horizon {horizon}, "
            f"{'growth' if layer.factor > 1 else 'decay'} factor {layer.factor:.3f} per step, "
            f"{radius}largest singular value {layer.max_singular_value:.3f}. {layer.advice}\n"
        )
    params = Table(title="parameters (gradient of the mean loss over the windows)", title_justify="left")
    for name in ("parameter", "grad norm", "param norm", "ratio"):
        params.add_column(name, justify="right" if name != "parameter" else "left")
    for name, v in report.params.items():
        ratio = f"{v['ratio']:.3e}" if math.isfinite(v["ratio"]) else "-"  # a zero parameter has no ratio
        params.add_row(name, f"{v['grad_norm']:.3e}", f"{v['param_norm']:.3e}", ratio)
    out.append(params)
    if report.clip_fraction is not None:
        out.append(f"clipping fired on {100 * report.clip_fraction:.1f}% of training steps")
    if report.check is not None:
        check = Table(title="finite-difference check (float64)", title_justify="left")
        check.add_column("parameter")
        check.add_column("max relative error", justify="right")
        for name, err in report.check.items():
            check.add_row(name, "gradient too small to check" if err is None else f"{err:.2e}")
        out.append(check)
    return out


def corpus_summary(summary: dict) -> Table:
    """The `charnn data prepare` report."""
    show = lambda pairs: ", ".join(f"{c!r} x{n:,}" for c, n in pairs)
    rows = [
        ("characters", f"{summary['chars']:,}"),
        ("vocabulary", f"{summary['vocab_size']} symbols ({summary['encoding']})"),
        ("most frequent", show(summary["most_frequent"])),
        ("rarest", show(summary["rarest"])),
        ("mapped to \ufffd", f"{summary['replaced']:,} occurrences of {summary['replaced_distinct']} rare characters"),
        ("splits", f"train {summary['train']:,} / val {summary['val']:,} / test {summary['test']:,}"),
        ("cache", f"{summary['cache'] or '(inline text, not cached)'} ({'reused' if summary['reused'] else 'built'})"),
    ]
    return key_value_table(f"corpus {summary['source']}", rows)


def synth_table(name: str, summary: dict) -> Table:
    """The `charnn data synth` report: the two oracle losses and the memory-recoverable gap."""
    return key_value_table(f"{summary['task']} text {name} (K = {summary['lag']})", [
        ("characters", f"{summary['chars']:,}"),
        ("best possible loss (remembers K back)", f"{summary['best_nats_per_char']:.4f} nats/char"),
        ("loss without that memory", f"{summary['nomem_nats_per_char']:.4f} nats/char"),
        ("recoverable by memory", f"{summary['recoverable_nats_per_char']:.4f} nats/char"),
    ], justify="right")


def checkpoint_tables(info: dict, max_vocab_chars: int = 200) -> list[Table]:
    """The `charnn info` report: what the checkpoint holds, then its config as dotted keys."""
    vocab = "".join(info["vocabulary"])
    more = len(vocab) - max_vocab_chars
    shown = repr(vocab[:max_vocab_chars]) + (f" ... ({more:,} more)" if more > 0 else "")
    step = info["step"]
    rows = [
        ("format", f"{info['format']} version {info['format_version']}, "
                   f"written by charnn {info['charnn_version'] or '?'}"),
        ("model", f"{info['cell']}, {info['num_layers']} x {info['hidden_size']} units, {info['dtype']}"),
        ("parameters", f"{info['parameters']:,}"),
        ("vocabulary", f"{info['vocab_size']} symbols: {shown}"),
        ("step", "-" if step is None else f"{step:,}"),
        ("characters seen", "-" if info["chars_seen"] is None else f"{info['chars_seen']:,}"),
        ("best val loss", "-" if info["best_val_loss"] is None else
         f"{info['best_val_loss']:.4f} nats/char ({info['best_val_loss'] / LN2:.3f} bits/char)"),
        ("file", f"{info['file_bytes']:,} bytes"),
    ]
    config = [(f"{section}.{key}", json.dumps(value, ensure_ascii=False))
              for section, values in info["config"].items() for key, value in (values or {}).items()]
    return [key_value_table(f"checkpoint {info['path']}", rows), key_value_table("config", config)]


def _trial_order(row: dict) -> tuple:
    rank = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2}.get(row["state"], 3)
    return (rank, row["value"] if row["value"] is not None else math.inf, row["number"])


def _duration(seconds) -> str:
    if seconds is None:
        return "-"
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes}m{s:02d}s" if minutes else f"{s}s"


def sweep_table(summary: dict) -> list:
    """The `charnn sweep` report: every trial, best first, then the failures' reasons."""
    rows = sorted(summary["trials"], key=_trial_order)
    counts = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    tally = ", ".join(f"{n} {state.lower()}" for state, n in counts.items())
    table = Table(title=f"sweep {summary['study']}: {len(rows)} trials ({tally or 'none yet'})", title_justify="left")
    for name in ("trial", "state", "objective", "parameters", "duration"):
        table.add_column(name, justify="right" if name in ("trial", "objective", "duration") else "left")
    best = summary["best"]["number"] if summary["best"] else None
    colour = {"COMPLETE": "green", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan"}
    for row in rows:
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row["params"].items())
        table.add_row(f"{row['number']}{' *' if row['number'] == best else ''}",
                      f"[{colour.get(row['state'], 'white')}]{row['state']}[/]", _fmt(row["value"], ".4f"),
                      escape(params), _duration(row["duration_s"]))
    out = [table, f"storage: {escape(summary['storage'])}"]
    out += [f"trial {row['number']} failed: {escape(row['error'])}" for row in rows if row["state"] == "FAIL" and row["error"]]
    return out


def memory_span_table(groups: list[dict]) -> Table:
    """The memory-span experiment: per K, each cell's mean share learned [min, max over seeds]."""
    cells = list(dict.fromkeys(g["cell"] for g in groups))
    table = Table(title="share of the memory-recoverable information learned (mean over seeds [min, max]; "
                  "horizon)", title_justify="left")
    table.add_column("K", justify="right")
    for cell in cells:
        table.add_column(cell, justify="right")
    for lag in sorted({g["K"] for g in groups}):
        row = [str(lag)]
        for cell in cells:
            g = next((g for g in groups if g["cell"] == cell and g["K"] == lag), None)
            row.append("-" if g is None else f"{100 * g['mean']:.0f}% [{100 * g['min']:.0f}, {100 * g['max']:.0f}] "
                       f"({', '.join(map(str, g['horizons']))})")
        table.add_row(*row)
    return table


def bias_variance_table(result: dict) -> Table:
    """The bias-variance experiment: per value of the varied key, the three terms and the training loss."""
    table = Table(title=f"held-out loss over {result['subsets']} training slices (nats/char)", title_justify="left")
    for name in (result["key"], "total", "bias + noise", "variance", "training loss"):
        table.add_column(name, justify="right")
    for r in result["rows"]:
        table.add_row(str(r["value"]), f"{r['total']:.4f}", f"{r['bias_noise']:.4f}", f"{r['variance']:.4f}",
                      f"{r['train_loss']:.4f}")
    return table
