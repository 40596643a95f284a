"""The command line: a thin Typer layer (app.py) over the library, rendering with rich (display.py).

The only package that imports typer and rich, prints, and exits; it may import everything else.
"""

from charnn.cli.app import main, run

__all__ = ["main", "run"]
