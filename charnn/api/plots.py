"""Figures from the API: whether they can be drawn (matplotlib is the optional [plot] extra), and a
check of a picture's path before any work is spent on it."""

from __future__ import annotations

from pathlib import Path


def available() -> bool:
    """Whether matplotlib is installed, so figures can be drawn."""
    from charnn.analysis import figures

    return figures.available()


def check_path(path: str | Path, what: str = "plot") -> None:
    """Refuse, before any work, a picture matplotlib cannot write there (its type, its folder)."""
    from charnn.analysis import figures

    figures.check_target(path, what)
