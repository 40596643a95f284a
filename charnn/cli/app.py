"""The `charnn` command line: a thin Typer layer over the library.

Each command parses its arguments, calls library functions and renders the result.
A CharnnError becomes a one-line message on stderr and exit code 1; a usage error, exit 2.
"""

from __future__ import annotations

import re
import sys
from typing import Optional

import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, UsageError

from charnn.cli.core import EXIT_INTERRUPTED, app

# the commands register on the app as they are imported, in the order --help lists them
from charnn.cli import train_commands  # noqa: E402, F401, I001
from charnn.cli import inspect_commands  # noqa: E402, F401
from charnn.cli import data_commands  # noqa: E402, F401
from charnn.cli import sweep_command  # noqa: E402, F401
from charnn.cli import export_command  # noqa: E402, F401
from charnn.cli import serve_command  # noqa: E402, F401

_SET_PAIR = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*=")


def expand_set_arguments(argv: list[str]) -> list[str]:
    """Let one --set take several pairs: `--set a.b=1 c.d=2` becomes `--set a.b=1 --set c.d=2`."""
    out, takes_value, in_pairs = [], False, False
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        if takes_value:
            out.append(arg)
            takes_value, in_pairs = False, True
            continue
        if in_pairs and _SET_PAIR.match(arg):
            out += ["--set", arg]
            continue
        in_pairs = arg.startswith("--set=")
        takes_value = arg == "--set"
        out.append(arg)
    return out


def set_without_equals(argv: list[str]) -> str | None:
    """The error for `--set train.lr 0.01` (a space where = belongs), which the parser would only call
    an unexpected extra argument; None when every --set pair has its =."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "--":
            return None
        key = argv[i + 1]
        if arg == "--set" and "=" not in key and re.fullmatch(r"[A-Za-z_]\w*\.[A-Za-z_]\w*", key):
            value = argv[i + 2] if i + 2 < len(argv) and not argv[i + 2].startswith("-") else "VALUE"
            return f"--set takes KEY=VALUE with no space around '=': --set {key}={value}"
    return None


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; returns the exit code. Usage errors are one line and exit 2."""
    from charnn.cli.display import print_error, use_plain_help_when_no_color

    use_plain_help_when_no_color()
    argv = list(sys.argv[1:] if argv is None else argv)
    spaced = set_without_equals(argv)
    if spaced:
        print_error(spaced)
        return 2
    argv = expand_set_arguments(argv)
    try:
        code = app(args=argv, prog_name="charnn", standalone_mode=False)
    except UsageError as e:
        message = e.format_message()
        if "unexpected extra argument" in message and "=" in message:
            message += "; each --set pair is section.key=value (e.g. --set train.lr=3e-3 model.hidden_size=256)"
        hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
        print_error(f"{message}{hint}")
        return 2
    except typer.Abort:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except ClickException as e:
        print_error(e.format_message())
        return e.exit_code
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
