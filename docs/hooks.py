"""MkDocs hook: the CLI reference page is the program's own --help, generated at build time."""

from __future__ import annotations

import os
import subprocess
import sys

MARKER = "<!-- cli-reference -->"


def _command_paths() -> list[list[str]]:
    """Every command of the charnn app, as argument lists: [[], ["train"], ["data", "prepare"], ...]."""
    import typer

    from charnn.cli.app import app

    paths = []

    def walk(command, prefix):
        paths.append(prefix)
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            if not getattr(sub, "hidden", False):
                walk(sub, prefix + [name])

    walk(typer.main.get_command(app), [])
    return paths


def _help(path: list[str]) -> str:
    env = dict(os.environ, COLUMNS="100", NO_COLOR="1", TERM="dumb")
    out = subprocess.run([sys.executable, "-m", "charnn", *path, "--help"], capture_output=True, text=True,
                         env=env, check=True).stdout
    return "\n".join(line.rstrip() for line in out.strip("\n").splitlines())


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    sections = []
    for path in _command_paths():
        title = " ".join(["charnn", *path])
        sections.append(f"## `{title}`\n\n```text\n{_help(path)}\n```\n")
    return markdown.replace(MARKER, "\n".join(sections))
