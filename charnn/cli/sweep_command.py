"""charnn sweep."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from charnn import api
from charnn.cli.core import (FLAG, app, command)


@command(app)
def sweep(
    sweep_file: Path = typer.Argument(..., metavar="SWEEP.yaml",
                                      help="Sweep file: base config, search space, budget (docs: Sweeps)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL",
                                          help="Optuna storage URL (sqlite:///..., postgresql://...) or a journal "
                                          "file (default: <run.dir>/<sweep>/optuna-journal.log)."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, metavar="N",
                                         help="Finished (complete or pruned) trials the study should hold; overrides "
                                         "the file's trials. A restart continues towards it."),
    workers: int = typer.Option(1, "--workers", min=1, metavar="N",
                                help="Worker processes to run here, each with cores/N BLAS threads."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the study as one JSON object."),
    status: bool = typer.Option(False, "--status", metavar=FLAG, help="Show the trials so far without running any."),
    worker: bool = typer.Option(False, "--worker", hidden=True, metavar=FLAG,
                                help="Run as one worker of --workers (no result printed)."),
) -> None:
    """Search hyperparameters with Optuna; every trial is a run directory <run.dir>/<sweep>/trial-<n>/.

    Workers on other machines join with the same command and the same --storage. Ctrl-C records the running trial as failed and exits 130; the same command continues the study. The best trial's config is written to <run.dir>/<sweep>/best.yaml.

    Example: charnn sweep my_sweep.yaml --workers 2
    """
    from charnn.cli.display import stderr_console, stdout_console, sweep_table

    console = stderr_console()
    log = lambda message: console.print(message, markup=False)  # noqa: E731
    summary = api.sweep(sweep_file, storage, trials, workers, status=status, worker=worker, log=log)
    if worker:
        return
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        out = stdout_console()
        for item in sweep_table(summary):
            out.print(item)
    best = summary["best"]
    best_path = Path(best["run_dir"]).parent / "best.yaml" if best is not None and best["run_dir"] else None
    if best_path is not None and best_path.exists():
        console.print(f"best config: {best_path} (train it with: charnn train {best_path})", markup=False)
