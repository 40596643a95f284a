"""charnn export: a thin layer over charnn.export."""

from __future__ import annotations

import json
from contextlib import nullcontext
from pathlib import Path
from typing import Optional

import typer

from charnn import api
from charnn.cli.core import FLAG, Picked, app, command

_FORMATS = "safetensors|onnx|web|hf"


@command(app, spelling={"format": "--format", "dtype": "--dtype", "out": "-o PATH"})
def export(
    checkpoint_path: Optional[Path] = typer.Argument(
        None, metavar="[CHECKPOINT]", help="Checkpoint to export: a .npz, an exported .safetensors or an hf folder "
        "(default: best.npz of the most recently written run under ./runs)."),
    format: str = typer.Option(..., "--format", "-f", metavar=_FORMATS,
                               help="safetensors: weights with torch's names, for torch and charnn; onnx: a one-step "
                                    "ONNX graph (needs the onnx extra); web: one HTML page that samples in the browser, "
                                    "offline; hf: a folder for the Hugging Face Hub (weights, config, model card, page)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="PATH", help="The file to write (a folder for hf)."),
    dtype: Optional[str] = typer.Option(None, "--dtype", metavar="float32|float16",
                                        help="How the weights are stored (default: float16 for web, halving the page; "
                                             "float32 otherwise, which reads back exactly)."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Replace PATH if it exists."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG,
                                 help="Print one JSON object: path, format, bytes, dtype, cell, parameters."),
) -> None:
    """Write a model in a format other tools read: safetensors, onnx, web or hf.

    The output appears whole or not at all; an existing PATH is replaced only with --force.

    Example: charnn export --format web -o model.html
    """
    picked = Picked(checkpoint_path, other="charnn export CHECKPOINT")
    from charnn.cli.display import stderr_console

    console = stderr_console()
    with console.status(f"exporting to {out} ...", spinner="dots") if console.is_terminal else nullcontext():
        done = api.export(picked.path, out, format=format, dtype=dtype, force=force)
    picked.say()
    if as_json:
        typer.echo(json.dumps(done.to_dict(), ensure_ascii=False))
        return
    typer.echo(f"wrote {done.path}: {done.format}, {done.dtype} weights, {done.bytes:,} bytes "
               f"({done.cell}, {done.parameters:,} parameters)")

