#!/usr/bin/env python
"""How long `charnn report` takes on a run, and (optionally) screenshots of its page.

    python benchmarks/bench_report.py RUN_DIR [--text-chars 2000] [--repeats 3] [--screenshots DIR]

Prints the run's model and the wall time of each repeat (the whole report: reading the
logs, the model over the text, the gradient analysis, the figures, writing the page).
With --screenshots (needs `pip install playwright` and Debian's chromium) it opens the page
in headless Chromium, picks the first picked unit, hovers a character and saves two PNGs.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from charnn.analysis.report import build_report  # noqa: E402


def screenshots(page_path: Path, folder: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(page_path.resolve().as_uri())
        page.wait_for_selector("#unit-text span")
        page.screenshot(path=str(folder / "report_curves.png"))
        page.click("#picked button")
        page.locator("#unit-text").scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -150)")
        page.hover("#unit-text span:nth-child(40)")
        page.wait_for_selector("#top5", state="visible")
        page.screenshot(path=str(folder / "report_units.png"))
        browser.close()
    print(f"wrote {folder / 'report_curves.png'} and {folder / 'report_units.png'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--text-chars", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--screenshots", metavar="DIR")
    args = ap.parse_args()
    cfg = Path(args.run_dir, "config.yaml").read_text()
    model = [line.strip() for line in cfg.split("model:")[1].splitlines()[1:5]]
    print(f"report of {args.run_dir} ({', '.join(model)}), {args.text_chars} characters of text")
    for r in range(args.repeats):
        start = time.perf_counter()
        result = build_report([args.run_dir], text_chars=args.text_chars)
        print(f"  repeat {r + 1}: {time.perf_counter() - start:.2f} s -> {result['report']} "
              f"({Path(result['report']).stat().st_size / 1e6:.2f} MB)")
    if args.screenshots:
        screenshots(Path(result["report"]), Path(args.screenshots))


if __name__ == "__main__":
    main()
