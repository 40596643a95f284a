"""charnn.report and charnn.describe: a run's page, and what a checkpoint holds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from charnn.api.runs import Run


@dataclass
class Report:
    """The HTML page `charnn report` writes, and the numbers behind it.

    Examples:
        >>> page = charnn.report([run.dir])
        >>> page.path.name
        'report.html'
    """

    path: Path
    numbers: dict = field(repr=False)

    def to_dict(self) -> dict:
        """The keys `charnn report --json` prints: report, checkpoint, runs, and for one run units and gates."""
        return dict(self.numbers)

    def _repr_html_(self) -> str:
        from charnn.api import html

        return html.report(self)


def report(runs: Iterable[str | Path | Run] | str | Path | Run, out: str | Path | None = None, text: str | Path | None = None, text_chars: int = 2000,
           units: int = 6) -> Report:
    """Write one self-contained HTML page of what a run learned (several runs: one page comparing
    them); needs matplotlib. runs: run directories (or Runs); out: the page's path (default
    <run>/report.html, or ./report.html for several); text: a file to show the units over (else the
    first text_chars characters of the validation text); units: how many units to show side by side.

    Examples:
        >>> charnn.report([run.dir]).to_dict()["runs"][0]["steps"]
        300
    """
    from charnn.analysis.report import build_report

    items = runs if isinstance(runs, (list, tuple)) else [runs]
    dirs = [Path(getattr(r, "dir", r)) for r in items]
    numbers = build_report(dirs, out, text, text_chars, units)
    return Report(Path(numbers["report"]), numbers)


def describe(path: str | Path) -> dict:
    """What a checkpoint (or an exported .safetensors file or hf folder) holds, read from its headers and metadata without loading its weights
    (the keys of `charnn info --json`): format, charnn version, cell, sizes, parameters, vocabulary,
    step, characters seen, best validation loss and the config. A damaged or hostile file is refused.

    Examples:
        >>> charnn.describe(run.dir / "best.npz")["cell"]
        'rnn'
    """
    from charnn.formats import safetensors_file
    from charnn.training import checkpoint

    path = Path(path)
    if safetensors_file.is_safetensors(path):
        return safetensors_file.describe(path)
    return checkpoint.describe(path)
