"""Running the app: the socket (bound here, so a busy port is a one-line error), uvicorn, and a
clean stop: on SIGTERM or Ctrl-C every stream is closed, the connections end, and the server
returns (exit 0 for SIGTERM)."""

from __future__ import annotations

import errno
import signal
import socket
from pathlib import Path

from charnn import hints
from charnn.errors import CharnnError


def need_packages():
    try:
        import fastapi  # noqa: F401
        import threadpoolctl  # noqa: F401
        import uvicorn
    except ImportError:
        raise CharnnError(f"charnn serve needs FastAPI and uvicorn: {hints.install('serve')}") from None
    return uvicorn


def model_names(models: list) -> dict:
    """name -> model: each under its run's name (or its file's stem), made unique with -2, -3, ..."""
    out: dict = {}
    for model in models:
        path = model.path
        name = model.config.run.name or (Path(path).stem if path else "model")
        if path is not None and Path(path).name == "model.safetensors":
            name = Path(path).parent.name  # an hf folder: the folder's name
        unique, k = name, 2
        while unique in out:
            unique, k = f"{name}-{k}", k + 1
        out[unique] = model
    return out


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, or a one-line error naming the problem."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise CharnnError(f"cannot serve on host {host!r}: {e.strerror}; give --host an address such as 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise CharnnError(f"port {port} on {host} is in use (another server?); give another --port") from None
        raise CharnnError(f"cannot listen on {host}:{port}: {e.strerror}; give another --host or --port") from None
    return sock


def run(app, sock: socket.socket) -> int:
    """Serve until SIGTERM or Ctrl-C; returns the signal that stopped it."""
    uvicorn = need_packages()

    class Server(uvicorn.Server):
        stopped_by = 0

        def handle_exit(self, sig, frame):
            Server.stopped_by = Server.stopped_by or sig
            app.state.engine.request_stop()  # streams end now, so their connections can close
            super().handle_exit(sig, frame)
            self._captured_signals.clear()  # a clean stop, not a death by signal

    from threadpoolctl import threadpool_limits

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5,
                            timeout_keep_alive=5)
    server = Server(config)
    import sys

    switch = sys.getswitchinterval()
    sys.setswitchinterval(0.0005)  # the stepping thread and the event loop hand the GIL over 10x as often
    try:
        with threadpool_limits(limits=blas_threads(), user_api="blas"):
            server.run(sockets=[sock])
    finally:
        sys.setswitchinterval(switch)
    return Server.stopped_by or signal.SIGTERM


def blas_threads() -> int:
    """The thread budget of the model's arithmetic: every core but one, which the HTTP side needs
    (on 2 cores, BLAS threads spinning beside the event loop made one stream 6x slower)."""
    import os

    given = os.environ.get("CHARNN_SERVE_BLAS_THREADS", "")
    return int(given) if given.isdigit() and int(given) > 0 else max(1, (os.cpu_count() or 2) - 1)
