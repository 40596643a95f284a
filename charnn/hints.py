"""Hints that name only what exists where the user stands: commands, files and install lines.

Inside a source checkout of charnn, `pip install -e '.[plot]'` and `configs/hello.yaml` are
real; elsewhere (a wheel installed from anywhere) they are not, so the hint names the plain
packages and the command that needs no config file.
"""

from __future__ import annotations

from pathlib import Path

# what each optional extra installs (pyproject.toml's [project.optional-dependencies])
EXTRAS = {
    "plot": "matplotlib",
    "notebook": "nbclient nbformat ipykernel matplotlib",
    "docs": "mkdocs mkdocs-material 'mkdocstrings[python]' mkdocs-jupyter",
    "sweep": "optuna",
    "onnx": "onnx",
    "serve": "fastapi uvicorn threadpoolctl",
    "fast": "numba",
    "postgres": "optuna 'psycopg[binary]' psycopg2-binary",
}


def in_checkout(folder: Path | None = None) -> bool:
    """Whether `folder` (default: the working directory) is the root of a charnn source checkout."""
    folder = Path.cwd() if folder is None else folder
    try:
        text = (folder / "pyproject.toml").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return 'name = "charnn"' in text and (folder / "charnn").is_dir()


def install(extra: str) -> str:
    """The command that installs an optional extra, as it works from here."""
    if in_checkout():
        return f"pip install -e '.[{extra}]'"
    return f"pip install {EXTRAS[extra]}"


def train_first() -> str:
    """The command that makes a first run, as it works from here."""
    if (Path.cwd() / "configs" / "hello.yaml").is_file():
        return "charnn train configs/hello.yaml"
    return "charnn train --data YOUR_TEXT.txt"
