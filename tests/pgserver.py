"""A throwaway PostgreSQL server for the tests and benchmarks that need a real one.

initdb + pg_ctl in a temporary folder, as a non-root user (the `postgres` user when run as root);
the server and its folder are removed at the end. Needs PostgreSQL's server binaries (Debian:
apt-get install postgresql) and a driver (pip install -e '.[postgres]').
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


def binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))  # Debian keeps them off PATH
    return candidates[-1] if candidates else None


def _as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def unavailable() -> str | None:
    """Why a server cannot be started here, or None when it can."""
    if not (binary("initdb") and binary("pg_ctl")):
        return "PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)"
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        return "no PostgreSQL driver: pip install -e '.[postgres]'"
    if _as_root():  # initdb refuses to run as root
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run the server as"
        if not shutil.which("runuser"):
            return "running as root and runuser is missing"
    return None


def _run(*cmd: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if _as_root() else []
    subprocess.run(prefix + list(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def postgres_server():
    """Start a PostgreSQL server in a temporary folder; yield its URL; stop and delete it."""
    folder = Path(tempfile.mkdtemp(prefix="charnn-pg-"))  # under /tmp, so the postgres user can reach it
    if _as_root():
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    _run(binary("initdb"), "-D", str(data), "-A", "trust", "-U", "charnn", "--no-sync")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    _run(binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    try:
        yield f"postgresql://charnn@127.0.0.1:{port}/postgres"
    finally:
        _run(binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)
