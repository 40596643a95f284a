"""charnn data prepare | synth, and charnn experiment memory-span | bias-variance."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from charnn.cli.core import (FLAG, SET_HELP, command, data_app, experiment_app)
from charnn.errors import CharnnError


@command(data_app, "prepare")
def data_prepare(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML experiment config whose data section to prepare."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the summary as one JSON object."),
) -> None:
    """Encode a corpus into the id cache that training reads, and summarise it.

    Streams the text in blocks (any size), builds the vocabulary, and stores the ids once; later runs reuse them while the source is unchanged.

    Example: charnn data prepare configs/shakespeare.yaml
    """
    from charnn.settings import load_config
    from charnn.data.corpus import load_corpus
    from charnn.cli.display import corpus_summary, stderr_console, stdout_console

    cfg = load_config(config, set_)
    console = stderr_console()
    corpus = load_corpus(cfg, lambda message: console.print(message, markup=False))
    prepared = corpus.prepared
    order = np.argsort(-prepared.counts, kind="stable")
    pairs = [(prepared.vocab.chars[i], int(prepared.counts[i])) for i in order if prepared.counts[i] > 0]
    summary = {
        "source": prepared.source, "chars": int(len(prepared.ids)), "vocab_size": prepared.vocab.size,
        "encoding": cfg.data.encoding, "most_frequent": pairs[:5], "rarest": pairs[::-1][:5],
        "replaced": prepared.replaced, "replaced_distinct": prepared.replaced_distinct,
        "train": len(corpus.train), "val": len(corpus.val), "test": len(corpus.test),
        "cache": str(prepared.cache_dir) if prepared.cache_dir else None, "reused": prepared.reused,
    }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        stdout_console().print(corpus_summary(summary))


@command(data_app, "synth", spelling={"length": "--length"})
def data_synth(
    task: str = typer.Argument(..., metavar="delay|brackets", help="The task: a delayed repeat, or nested brackets."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE",
                                help="Text file to write (its oracle losses go to FILE.json)."),
    lag: int = typer.Option(10, "--lag", "-k", metavar="K", help="K: how far back the model must remember."),
    length: int = typer.Option(200_000, "--length", "-n", metavar="N", help="Characters to generate."),
    rng_seed: int = typer.Option(0, "--rng-seed", min=0, metavar="N", help="Seed: the same seed writes the same text."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Overwrite FILE and FILE.json if they exist."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the oracle losses as one JSON object."),
) -> None:
    """Write a synthetic text that can only be predicted by remembering K characters back.

    Prints the best possible loss (perfect memory) and the loss without that memory, so a model's loss reads as the fraction of the recoverable information it learned.

    Example: charnn data synth delay --lag 20 -o data/delay20.txt
    """
    from charnn.cli.display import stdout_console, synth_table
    from charnn.data.synth import generate, write

    summary = write(generate(task, lag, length, rng_seed), output, force=force)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        stdout_console().print(synth_table(str(output), summary))


@command(experiment_app, "memory-span")
def experiment_memory_span(
    cells_: str = typer.Option("rnn,lstm,gru,mlp", "--cells", metavar="CELLS", help="Cells to compare, comma-separated."),
    context: int = typer.Option(16, "--context", metavar="W", help="The mlp's window: the characters it sees."),
    seeds: str = typer.Option("0,1,2", "--seeds", metavar="S,...", help="Run seeds (initialisation)."),
    stages: Optional[str] = typer.Option(None, "--stages", metavar="K:SECONDS,...",
                                         help="The curriculum (default: K = 2, 5, 10, 20, 40, 80)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Config overrides for every stage."),
    quick: bool = typer.Option(False, "--quick", metavar=FLAG, help="K = 2, 5, 10 with short budgets: a few minutes."),
    out: Path = typer.Option(Path("memory_span"), "--out", metavar="PREFIX", help="Writes PREFIX.csv and PREFIX.png."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the rows as one JSON object."),
) -> None:
    """How far back can each cell remember? Train each on the delay task for growing K and measure the share of the memory-recoverable information it learned.

    Example: charnn experiment memory-span --quick --seeds 0
    """
    from charnn.analysis import memory_span
    from charnn.cli.display import memory_span_table, stderr_console, stdout_console

    names = [c.strip() for c in cells_.split(",") if c.strip()]
    memory_span.check_cells(names)
    if context < 1:
        raise CharnnError(f"--context must be >= 1 (got {context})")
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise CharnnError(f"--seeds {seeds!r}: expected integers, e.g. 0,1,2") from None
    plan = memory_span.parse_stages(stages) if stages else memory_span.QUICK if quick else memory_span.FULL
    csv = _experiment_output(out)
    has_plot = _plot_extra_check()
    console = stderr_console()
    with _rows_kept(csv):
        rows = memory_span.run(names, plan, seed_list, set_, context=context,
                               log=lambda m: console.print(m, markup=False),
                               on_row=lambda rows: memory_span.write_csv(rows, csv))
    if as_json:  # the results first: nothing that goes wrong with the figure can cost them
        keys = ("cell", "K", "seed", "fraction", "horizon")
        typer.echo(json.dumps({"rows": [{k: r[k] for k in keys} for r in rows]}))
    else:
        stdout_console().print(memory_span_table(memory_span.summary(rows)))
    if has_plot:
        memory_span.plot(rows, out.with_suffix(".png"))


@command(experiment_app, "bias-variance")
def experiment_bias_variance(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The config trained on each slice."),
    vary: str = typer.Option(..., "--vary", metavar="KEY=v1,v2,...", help="The config key to vary and its values."),
    subsets: int = typer.Option(4, "--subsets", metavar="K", help="Disjoint slices of the training text."),
    quick: bool = typer.Option(False, "--quick", metavar=FLAG,
                               help="At most 200 steps (and 12 s) per model and 20,000 held-out characters."),
    out: Path = typer.Option(Path("bias_variance"), "--out", metavar="PREFIX", help="Writes PREFIX.csv and PREFIX.png."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the rows as one JSON object."),
) -> None:
    """Split the held-out log loss into bias (plus noise) and variance: train the config on K disjoint slices of its training text for each value of one key.

    Example: charnn experiment bias-variance configs/shakespeare.yaml --vary model.hidden_size=32,128,512 --subsets 4
    """
    from charnn.analysis import bias_variance
    from charnn.cli.display import bias_variance_table, stderr_console, stdout_console

    plan, configs = bias_variance.plan(config, vary, subsets)
    if quick:
        configs = [bias_variance.quick(cfg) for cfg in configs]
    csv = _experiment_output(out)
    has_plot = _plot_extra_check()
    console = stderr_console()
    with _rows_kept(csv):
        result = bias_variance.run(plan, configs, log=lambda m: console.print(m, markup=False),
                                   held_out_chars=20_000 if quick else None,
                                   on_row=lambda so_far: bias_variance.write_csv(so_far, csv))
    if as_json:  # the results first: nothing that goes wrong with the figure can cost them
        typer.echo(json.dumps(result))
    else:
        stdout_console().print(bias_variance_table(result))
    if has_plot:
        bias_variance.plot(result, out.with_suffix(".png"))


def _experiment_output(prefix: Path) -> Path:
    """PREFIX.csv, its folder checked before an experiment spends any time."""
    if not prefix.parent.is_dir():
        raise CharnnError(f"--out {prefix}: the folder {prefix.parent} does not exist")
    return prefix.with_suffix(".csv")


@contextlib.contextmanager
def _rows_kept(csv: Path):
    """A stopped experiment says where its finished rows are, and no resume hint: its runs were temporary."""
    from charnn.training.loop import TrainingInterrupted, TrainingStopped

    try:
        yield
    except (TrainingStopped, KeyboardInterrupt) as e:
        kept = f"the finished rows are in {csv}" if csv.exists() else "no row had finished"
        if isinstance(e, (KeyboardInterrupt, TrainingInterrupted)):
            raise TrainingInterrupted(f"interrupted; {kept}") from None
        raise type(e)(f"{e}; {kept}") from None


def _plot_extra_check() -> bool:
    """Whether the figure can be drawn; without matplotlib the experiment still runs and says so."""
    from charnn.analysis import figures

    if figures.available():
        return True
    from charnn import hints
    from charnn.cli.display import stderr_console

    stderr_console().print(f"note: no figure without matplotlib ({hints.install('plot')}); the CSV is written",
                           markup=False)
    return False
