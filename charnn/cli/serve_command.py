"""charnn serve: a thin layer over charnn.serve (FastAPI + uvicorn, the [serve] extra)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import List, Optional

import typer

from charnn.cli.core import EXIT_INTERRUPTED, Picked, app, command


@command(app, spelling={"max_streams": "--max-streams", "max_tokens": "--max-tokens"})
def serve(
    checkpoints: Optional[List[Path]] = typer.Argument(
        None, metavar="[CHECKPOINT ...]", help="Models to serve: checkpoints, exported .safetensors files or hf folders, "
        "each under its run's name (default: best.npz of the most recently written run under ./runs)."),
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS",
                             help="Address to listen on; 0.0.0.0 serves every network this machine is on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, metavar="N", help="Port to listen on."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="CHARNN_API_KEY", metavar="KEY", show_envvar=True,
                                          help="Require 'Authorization: Bearer KEY' on every route but /health."),
    max_tokens: int = typer.Option(2048, "--max-tokens", min=1, metavar="N",
                                   help="The most characters one request may ask for (max_tokens)."),
    max_streams: int = typer.Option(64, "--max-streams", min=1, metavar="N",
                                    help="The most texts made at once (all requests' choices); more get 429."),
) -> None:
    """Serve models over HTTP: OpenAI-compatible completions (POST /v1/completions, streamed or not),
    GET /v1/models, GET /health, and a page to try them at /.

    Every live stream advances together, one character per step (continuous batching). A request
    with a seed gives exactly the text of charnn sample --rng-seed with the same settings.

    Example: charnn serve --port 8000, then curl -N localhost:8000/v1/completions -d '{"prompt": "The ", "stream": true}'
    """
    from charnn import api
    from charnn.cli.display import stderr_console
    from charnn.serve import server

    server.need_packages()
    paths = list(checkpoints or [])
    if not paths:
        picked = Picked(None, other="charnn serve CHECKPOINT")
        paths = [picked.path]
        picked.say()
    models = server.model_names([api.load(path) for path in paths])
    sock = server.bind(host, port)
    console = stderr_console()
    if host in ("0.0.0.0", "::", ""):
        console.print(f"warning: serving on every network this machine is on ({host}); anyone who can reach it can "
                      f"use the models{'' if api_key else ': set --api-key'}", markup=False)
    from charnn.serve.app import create_app

    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    console.print(f"serving http://{shown}:{port}/ : " + ", ".join(
        f"{name} ({m.cell}, {m.config.model.num_layers} x {m.config.model.hidden_size})" for name, m in models.items())
        + "; Ctrl-C stops", markup=False)
    app_ = create_app(models, api_key=api_key or None, max_tokens=max_tokens, max_streams=max_streams,
                      log=lambda line: console.print(line, markup=False))
    stopped_by = server.run(app_, sock)
    console.print("stopped", markup=False)
    if stopped_by == signal.SIGINT:
        raise typer.Exit(EXIT_INTERRUPTED)
