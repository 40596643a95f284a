"""`charnn report`: a run read and analysed into one dataclass (reading.py, analysis.py), and the
page as a pure function of it (page.py, with page.css and page.js inlined).

`build_report` ties them together: analyse, render, write the file atomically, return the numbers.
"""

from __future__ import annotations

from pathlib import Path

from charnn.analysis import figures
from charnn.analysis.report import page
from charnn.analysis.report.analysis import RunAnalysis, analyse_run
from charnn.errors import CharnnError
from charnn.files import write_text_atomically

__all__ = ["RunAnalysis", "analyse_run", "build_report"]


def build_report(run_dirs: list, output=None, text_file=None, text_chars: int = 2000, units: int = 6) -> dict:
    """Write the report of one run (or the comparison of several); returns the numbers behind it:
    {report, checkpoint, runs: [{run_dir, steps, best_val_loss, checkpoint}]}, and for one run the
    picked units and gate saturation (units, gates)."""
    from charnn.data.sources import read_text_file

    figures.pyplot(page.WHAT)  # without matplotlib: say so before any work
    if not run_dirs:
        raise CharnnError("give at least one run directory")
    paths = [Path(p) for p in run_dirs]
    output = Path(output) if output is not None else paths[0] / "report.html" if len(paths) == 1 else Path("report.html")
    if not output.parent.is_dir():
        raise CharnnError(f"cannot write the report to {output}: the folder {output.parent} does not exist; "
                          "choose another file with -o")
    text = read_text_file(text_file) if text_file is not None else None
    single = len(paths) == 1
    analyses = [analyse_run(p, text, text_chars, units, detail=single) for p in paths]
    html_text = page.single_run_page(analyses[0]) if single else page.comparison_page(analyses)
    try:
        write_text_atomically(output, html_text)  # the whole page or nothing
    except OSError as e:
        raise CharnnError(f"cannot write the report to {output}: {e.strerror or e}; choose another file with -o") from None
    numbers = {"report": str(output), "checkpoint": analyses[0].checkpoint if single else None,
               "runs": [dict({k: a.run.summary()[k] for k in ("run_dir", "steps", "best_val_loss")},
                             checkpoint=a.checkpoint) for a in analyses]}
    if single:  # what the unit and gate views show
        numbers.update(units=analyses[0].picked, gates=analyses[0].gates)
    return numbers
