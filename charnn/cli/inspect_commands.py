"""charnn inspect-gradients, info and report: thin layers over Model.inspect_gradients, charnn.describe
and charnn.report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from charnn import api
from charnn.cli.core import CHECKPOINT_HELP, FLAG, SET_HELP, Picked, app, command, note_mapped
from charnn.errors import CharnnError


_INSPECT_GRADIENTS_CHECKPOINT_PATH = typer.Option(None, "--checkpoint", "-c", metavar="PATH",
                                                  help="Model to analyse. " + CHECKPOINT_HELP)
_INSPECT_GRADIENTS_CONFIG = typer.Option(None, "--config", metavar="CONFIG",
                                         help="Analyse a freshly initialised model of this config instead.")
_INSPECT_GRADIENTS_SET = typer.Option([], "--set", metavar="KEY=VALUE", help="With --config: " + SET_HELP)
_INSPECT_GRADIENTS_INIT_STD = typer.Option(None, "--init-std", metavar="S",
                                           help="With --config: initialise weights from N(0, S^2).")
_INSPECT_GRADIENTS_TEXT = typer.Option(None, "--text", metavar="TEXT", help="Analyse exactly this text (its first T+1 characters).")
_INSPECT_GRADIENTS_TEXT_FILE = typer.Option(None, "--text-file", metavar="FILE",
                                            help="Analyse the first T+1 characters of this file.")
_INSPECT_GRADIENTS_STEPS = typer.Option(None, "--steps", "-T", metavar="T",
                                        help="How many steps back to follow the gradient (default: 50, or fewer "
                                        "when the text is shorter).")
_INSPECT_GRADIENTS_WINDOWS = typer.Option(8, "--windows", metavar="N", help="Random windows of the validation text to average over.")
_INSPECT_GRADIENTS_RNG_SEED = typer.Option(0, "--rng-seed", min=0, metavar="N", help="Seed for choosing the windows.")
_INSPECT_GRADIENTS_CHECK = typer.Option(False, "--check", metavar=FLAG,
                                        help="Also check backward against finite differences (exit 1 if error >= 1e-6).")
_INSPECT_GRADIENTS_AS_JSON = typer.Option(False, "--json", metavar=FLAG, help="Print every number as one JSON object.")
_INSPECT_GRADIENTS_PLOT = typer.Option(None, "--plot", metavar="FILE.png|FILE.svg",
                                       help="Write a picture of norm against lag (needs matplotlib).")


@command(app, "inspect-gradients")
def inspect_gradients(
    checkpoint_path: Optional[Path] = _INSPECT_GRADIENTS_CHECKPOINT_PATH,
    config: Optional[Path] = _INSPECT_GRADIENTS_CONFIG,
    set_: List[str] = _INSPECT_GRADIENTS_SET,
    init_std: Optional[float] = _INSPECT_GRADIENTS_INIT_STD,
    text: Optional[str] = _INSPECT_GRADIENTS_TEXT,
    text_file: Optional[Path] = _INSPECT_GRADIENTS_TEXT_FILE,
    steps: Optional[int] = _INSPECT_GRADIENTS_STEPS,
    windows: int = _INSPECT_GRADIENTS_WINDOWS,
    rng_seed: int = _INSPECT_GRADIENTS_RNG_SEED,
    check: bool = _INSPECT_GRADIENTS_CHECK,
    as_json: bool = _INSPECT_GRADIENTS_AS_JSON,
    plot: Optional[Path] = _INSPECT_GRADIENTS_PLOT,
) -> None:
    """Watch gradients vanish or explode through time, per layer and lag.

    Measures ||dl_T/ds_{T-k}||, the Jacobian norm ||ds_T/ds_{T-k}|| and each step's share of dl_T/dW_hh for k = 0..T-1, then gives a verdict: exploding, vanishing, short memory or healthy.

    Example: charnn inspect-gradients --config my.yaml --init-std 1.0
    """
    _check_combination(checkpoint_path, config, text, text_file, init_std, plot)
    picked = None
    if config is None:
        try:
            picked = Picked(checkpoint_path)
        except CharnnError as e:
            raise CharnnError(f"{e}; or analyse a fresh model with --config CONFIG.yaml") from None
        model = api.load(picked.path)
    else:
        model = api.init_model(api.load_config(config, set_), init_std=init_std)
    if text is not None:
        note_mapped(model.vocab.map_rare(text)[1], "the text")
    report = model.inspect_gradients(text=text, steps=steps, windows=windows, rng_seed=rng_seed, check=check,
                                     file=text_file)
    if picked is not None:
        picked.say()
    _show_gradients(report, as_json, None if picked is None else picked.path)
    if plot is not None:
        report.plot(plot)
    if check:
        worst = max((e for e in report.check.values() if e is not None), default=0.0)
        if worst >= 1e-6:
            raise CharnnError(
                f"gradient check failed: max relative error {worst:.2e} >= 1e-6 (finite differences are unreliable "
                "where the loss is chaotic, as with exploding gradients; try a smaller --steps)"
            )


def _check_combination(checkpoint_path, config, text, text_file, init_std, plot) -> None:
    """inspect-gradients' options that exclude each other, and the picture's path, before any work."""
    if checkpoint_path is not None and config is not None:
        raise CharnnError("give either --checkpoint or --config, not both")
    if text is not None and text_file is not None:
        raise CharnnError("give either --text or --text-file, not both")
    if init_std is not None and config is None:
        raise CharnnError("--init-std applies to a fresh model: use it with --config")
    if plot is not None:
        api.plots.check_path(plot, "--plot")


def _show_gradients(report, as_json: bool, checkpoint_path: Optional[Path]) -> None:
    from charnn.cli.display import gradient_tables, stderr_console, stdout_console

    if report.short_text is not None:
        stderr_console().print(f"note: the text has {report.short_text} characters: following the gradient back "
                               f"--steps {report.steps}", markup=False)
    if as_json:
        typer.echo(json.dumps(dict(report.to_dict(), checkpoint=None if checkpoint_path is None
                                   else str(checkpoint_path))))
    else:
        console = stdout_console()
        for item in gradient_tables(report):
            console.print(item)


@command(app)
def info(
    checkpoint_path: Optional[Path] = typer.Argument(None, metavar="[CHECKPOINT]", help="Checkpoint (.npz) to "
                                                     "describe (default: best.npz of the most recently written run "
                                                     "under ./runs)."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print one JSON object instead of tables."),
) -> None:
    """Show what a checkpoint holds, from its headers and metadata, without loading its weights.

    Format and charnn version, cell and sizes, parameter count, vocabulary, step, characters seen, best validation loss and the config. A damaged or hostile file is refused as sample and eval would refuse it.

    Example: charnn info runs/hello/best.npz --json
    """
    from charnn.cli.display import checkpoint_tables, stdout_console

    picked = Picked(checkpoint_path, other="charnn info CHECKPOINT")
    summary = api.describe(picked.path)
    picked.say()
    if as_json:
        typer.echo(json.dumps(dict(summary, checkpoint=summary["path"]), ensure_ascii=False))
    else:
        console = stdout_console()
        for table in checkpoint_tables(summary):
            console.print(table)


@command(app, spelling={"text": "--text FILE"})
def report(
    run_dirs: Optional[List[Path]] = typer.Argument(None, metavar="[RUN_DIR ...]",
                                                    help="Run directories (default: the most recent run under ./runs)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE.html",
                                          help="Where to write the page (default: <run>/report.html; for several "
                                          "runs, ./report.html)."),
    text: Optional[Path] = typer.Option(None, "--text", metavar="FILE", help="Show the units over this text."),
    text_chars: int = typer.Option(2000, "--text-chars", metavar="N",
                                   help="Else over the first N characters of the run's validation text."),
    units: int = typer.Option(6, "--units", metavar="N",
                              help="Units shown side by side: the ones that follow a property of the text, "
                              "then those that vary most."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the numbers behind the page as JSON."),
) -> None:
    """Write one HTML page that shows what a run learned; it opens in any browser, offline.

    Learning curves, samples over training, the gradient flow of best.npz, what its units track in a text (with the units that follow quotes, brackets or line position picked out), the model's surprisal and likeliest next characters per character, and how often each gate saturates. Several runs: their curves overlaid and their configs side by side. Needs matplotlib (pip install matplotlib, or in a checkout pip install -e '.\\[plot]').

    Example: charnn report runs/story && open runs/story/report.html
    """
    given_dirs = bool(run_dirs)
    if not run_dirs:
        try:
            run_dirs = [api.runs.most_recent(name="config.yaml").parent]
        except CharnnError:
            from charnn import hints

            raise CharnnError(f"no run found under runs/; train first ({hints.train_first()}) "
                              "or give RUN_DIR") from None
    page = api.report(run_dirs, output, text, text_chars, units)
    if len(run_dirs) == 1 and not given_dirs:
        from charnn.cli.display import print_used

        best = run_dirs[0] / "best.npz"
        val_loss = api.describe(best)["val_loss"] if best.is_file() else None
        print_used(best if best.is_file() else run_dirs[0], val_loss, what="the most recent run",
                   other="charnn report RUN_DIR")
    if as_json:
        typer.echo(json.dumps(page.to_dict(), ensure_ascii=False))
    else:
        typer.echo(str(page.path))
