"""charnn data prepare | synth, and charnn experiment memory-span | bias-variance: thin layers over
charnn.prepare_data, synth_text, memory_span and bias_variance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from charnn import api
from charnn.cli.core import FLAG, SET_HELP, command, data_app, experiment_app
from charnn.errors import CharnnError


@command(data_app, "prepare")
def data_prepare(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML experiment config whose data section to prepare."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the summary as one JSON object."),
) -> None:
    """Encode a corpus into the id cache that training reads, and summarise it.

    Streams the text in blocks (any size), builds the vocabulary, and stores the ids once; later runs reuse them while the source is unchanged.

    Example: charnn data prepare my.yaml
    """
    from charnn.cli.display import corpus_summary, stderr_console, stdout_console

    console = stderr_console()
    summary = api.prepare_data(api.load_config(config, set_), log=lambda message: console.print(message, markup=False))
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

    Example: charnn data synth delay --lag 20 -o delay20.txt
    """
    from charnn.cli.display import stdout_console, synth_table

    summary = api.synth_text(task, output, lag=lag, length=length, rng_seed=rng_seed, force=force)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        stdout_console().print(synth_table(str(output), summary))


@command(experiment_app, "memory-span")
def experiment_memory_span(
    cells_: str = typer.Option("rnn,lstm,gru,mlp", "--cells", metavar="CELLS", help="Cells to compare, comma-separated."),
    context: int = typer.Option(16, "--context", metavar="W", help="The mlp's window: the characters it sees."),
    seeds: Optional[str] = typer.Option(None, "--seeds", metavar="S,...",
                                        help="Run seeds (initialisation); default 0,1,2, or 0 with --quick."),
    stages: Optional[str] = typer.Option(None, "--stages", metavar="K:SECONDS,...",
                                         help="The curriculum (default: K = 2, 5, 10, 20, 40, 80)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Config overrides for every stage."),
    quick: bool = typer.Option(False, "--quick", metavar=FLAG, help="K = 5 (10 s) and 20 (25 s), one seed: under 3 minutes, enough to see the Elman network fail "
                               "at 20 where the gated cells hold."),
    out: Path = typer.Option(Path("memory_span"), "--out", metavar="PREFIX", help="Writes PREFIX.csv and PREFIX.png."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the rows as one JSON object."),
) -> None:
    """How far back can each cell remember? Train each on the delay task for growing K and measure the share of the memory-recoverable information it learned.

    Example: charnn experiment memory-span --quick --seeds 0
    """
    from charnn.cli.display import memory_span_table, stderr_console, stdout_console

    names = [c.strip() for c in cells_.split(",") if c.strip()]
    try:
        seed_list = [int(s) for s in seeds.split(",")] if seeds is not None else None
    except ValueError:
        raise CharnnError(f"--seeds {seeds!r}: expected integers, e.g. 0,1,2") from None
    _plot_extra_check()
    console = stderr_console()
    result = api.memory_span(names, seed_list, stages, quick=quick, context=context, overrides=set_, out=out,
                             log=lambda m: console.print(m, markup=False))
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        stdout_console().print(memory_span_table(result.summary()))


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

    Example: charnn experiment bias-variance my.yaml --vary model.hidden_size=32,128,512 --subsets 4
    """
    from charnn.cli.display import bias_variance_table, stderr_console, stdout_console

    _plot_extra_check()
    console = stderr_console()
    result = api.bias_variance(config, vary, subsets, quick=quick, out=out, log=lambda m: console.print(m, markup=False))
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        stdout_console().print(bias_variance_table(result.to_dict()))


def _plot_extra_check() -> bool:
    """Whether the figure can be drawn; without matplotlib the experiment still runs and says so."""
    if api.plots.available():
        return True
    from charnn import hints
    from charnn.cli.display import stderr_console

    stderr_console().print(f"note: no figure without matplotlib ({hints.install('plot')}); the CSV is written",
                           markup=False)
    return False
