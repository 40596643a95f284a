"""The experiments as calls: how far back each cell remembers (memory_span), and the bias-variance
decomposition of held-out loss (bias_variance). Each returns its rows, writes PREFIX.csv as they
finish (and PREFIX.png when matplotlib is there) if asked, and shows itself in Jupyter.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from charnn.errors import ParameterError


@dataclass
class MemorySpan:
    """The memory-span experiment's rows: per cell, seed and K, the fraction of the memory-recoverable
    information learned on held-out text, and the memory horizon measured on the trained model.

    Examples:
        >>> result = charnn.memory_span(["rnn"], [0], [(2, 1)])
        >>> sorted(result.rows[0])[:4]
        ['K', 'best', 'cell', 'fraction']
    """

    rows: list[dict]
    csv: Path | None = None
    figure: Path | None = None

    def summary(self) -> list[dict]:
        """Per (cell, K): the mean, min and max fraction over the seeds, and the horizons."""
        from charnn.analysis.memory_span import summary

        return summary(self.rows)

    def to_dict(self) -> dict:
        """What `charnn experiment memory-span --json` prints."""
        keys = ("cell", "K", "seed", "fraction", "horizon")
        return {"rows": [{k: r[k] for k in keys} for r in self.rows]}

    def _repr_html_(self) -> str:
        from charnn.analysis import figures
        from charnn.api import html

        groups = self.summary()
        rows = [(f"{g['cell']}, K = {g['K']}", f"{100 * g['mean']:.0f}% learned [{100 * g['min']:.0f}, "
                 f"{100 * g['max']:.0f}] over {g['seeds']} seeds; horizon {', '.join(map(str, g['horizons']))}")
                for g in groups]
        figure = f"<div>{figures.to_svg(figures.memory_span(groups))}</div>" if figures.available() else ""
        return html.key_values("memory span", rows) + figure


@dataclass
class BiasVariance:
    """The decomposition per value of the varied key: total held-out loss = bias + noise + variance.

    Examples:
        >>> result = charnn.bias_variance("configs/demo.yaml", "model.hidden_size=8,32", subsets=2, quick=True)
        >>> sorted(result.rows[0])
        ['bias_noise', 'total', 'train_loss', 'value', 'variance']
    """

    key: str
    subsets: int
    rows: list[dict] = field(default_factory=list)
    csv: Path | None = None
    figure: Path | None = None

    def to_dict(self) -> dict:
        """What `charnn experiment bias-variance --json` prints."""
        return {"key": self.key, "subsets": self.subsets, "rows": self.rows}

    def _repr_html_(self) -> str:
        from charnn.analysis import figures
        from charnn.api import html

        rows = [(f"{self.key} = {r['value']}", f"total {r['total']:.4f} = bias+noise {r['bias_noise']:.4f} + "
                 f"variance {r['variance']:.4f}; training {r['train_loss']:.4f} nats/char") for r in self.rows]
        figure = f"<div>{figures.to_svg(figures.bias_variance(self.to_dict()))}</div>" if figures.available() else ""
        return html.key_values(f"bias and variance over {self.subsets} training slices", rows) + figure


def _prefix(out: str | Path | None) -> Path | None:
    """PREFIX for PREFIX.csv and PREFIX.png, its folder checked before an experiment spends any time."""
    if out is None:
        return None
    out = Path(out)
    if not out.parent.is_dir():
        raise ParameterError("{out} {got}: the folder {folder} does not exist", got=str(out), folder=str(out.parent))
    return out


@contextlib.contextmanager
def _rows_kept(csv: Path | None):
    """A stopped experiment says where its finished rows are (its runs were temporary: nothing to resume)."""
    from charnn.training.loop import TrainingInterrupted, TrainingStopped

    try:
        yield
    except (TrainingStopped, KeyboardInterrupt) as e:
        kept = "no row had finished" if csv is None or not csv.exists() else f"the finished rows are in {csv}"
        if isinstance(e, (KeyboardInterrupt, TrainingInterrupted)):
            raise TrainingInterrupted(f"interrupted; {kept}") from None
        raise type(e)(f"{e}; {kept}") from None


def _stages(stages, quick: bool):
    from charnn.analysis import memory_span

    if stages is None:
        return memory_span.QUICK if quick else memory_span.FULL
    if isinstance(stages, str):
        return memory_span.parse_stages(stages)
    return tuple((int(k), float(s)) for k, s in stages)


def memory_span(cells: Iterable[str] | None = None, seeds: Iterable[int] | None = None,
                stages: Iterable[tuple[int, float]] | str | None = None, *,
                quick: bool = False, context: int = 16, overrides: Iterable[str] = (), out: str | Path | None = None,
                log: Callable[[str], None] | None = None) -> MemorySpan:
    """How far back can each cell remember? Train each (about 19.5k parameters) on texts in which a
    marked letter recurs K characters later, for growing K (a curriculum for the recurrent cells),
    and measure the share of the memory-recoverable information learned.

    cells: default every registered cell; seeds: default (0, 1, 2), or (0,) when quick; stages:
    [(K, seconds), ...] or "K:S,..." (default K = 2 .. 80; quick: K = 5 and 20, in a few minutes,
    enough to see the Elman network fail where the LSTM holds); context: the mlp's window;
    overrides: "section.key=value" for every stage; out: write PREFIX.csv (and PREFIX.png).

    Examples:
        >>> result = charnn.memory_span(["rnn"], [0], [(2, 1)])
        >>> result.rows[0]["K"]
        2
    """
    from charnn.analysis import figures
    from charnn.analysis import memory_span as experiment
    from charnn.nn import cells as registry

    names = list(cells) if cells is not None else list(registry.CELLS)
    experiment.check_cells(names)
    if context < 1:
        raise ParameterError("{context} must be >= 1 (got {got})", got=context)
    seed_list = list(seeds) if seeds is not None else ([0] if quick else [0, 1, 2])
    prefix = _prefix(out)
    csv = prefix.with_suffix(".csv") if prefix else None
    with _rows_kept(csv):
        rows = experiment.run(names, _stages(stages, quick), seed_list, list(overrides), context=context,
                              log=log or (lambda message: None),
                              on_row=(lambda so_far: experiment.write_csv(so_far, csv)) if csv else (lambda so_far: None))
    result = MemorySpan(rows, csv)
    if prefix is not None and figures.available():  # the rows first: nothing in the figure can cost them
        result.figure = prefix.with_suffix(".png")
        experiment.plot(rows, result.figure)
    return result


def bias_variance(config: str | Path, vary: str, subsets: int = 4, *, quick: bool = False, out: str | Path | None = None,
                  log: Callable[[str], None] | None = None) -> BiasVariance:
    """Split the held-out log loss into bias (plus noise) and variance: train `config` on `subsets`
    disjoint slices of its training text for each value of one key (vary="model.hidden_size=32,128"),
    and decompose the models' held-out predictions exactly (Heskes 1998).

    quick: at most 200 steps (and 12 s) per model and 20,000 held-out characters; out: write
    PREFIX.csv (and PREFIX.png).

    Examples:
        >>> result = charnn.bias_variance("configs/demo.yaml", "model.hidden_size=8,32", subsets=2, quick=True)
        >>> [r["value"] for r in result.rows]
        ['8', '32']
    """
    from charnn.analysis import bias_variance as experiment
    from charnn.analysis import figures

    plan, configs = experiment.plan(config, vary, subsets)
    if quick:
        configs = [experiment.quick(cfg) for cfg in configs]
    prefix = _prefix(out)
    csv = prefix.with_suffix(".csv") if prefix else None
    with _rows_kept(csv):
        found = experiment.run(plan, configs, log=log or (lambda message: None), held_out_chars=20_000 if quick else None,
                               on_row=(lambda so_far: experiment.write_csv(so_far, csv)) if csv else (lambda so_far: None))
    result = BiasVariance(found["key"], found["subsets"], found["rows"], csv)
    if prefix is not None and figures.available():
        result.figure = prefix.with_suffix(".png")
        experiment.plot(found, result.figure)
    return result
