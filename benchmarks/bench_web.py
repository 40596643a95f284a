#!/usr/bin/env python
"""How fast exports are written, and how fast the web export samples in headless Chromium.

    python benchmarks/bench_web.py                       # an H=512 LSTM (the issue's figure)
    python benchmarks/bench_web.py --cell gru --hidden 256 --layers 2

Builds a model of random weights (speed does not depend on training) with a 65-character
vocabulary, times `charnn.export` in each format (median of --repeats), then opens the web
page (float16 and float32) in headless Chromium and times greedy generation of --chars
characters with the page's WebAssembly SIMD kernel and with its plain JavaScript one.
Needs Chromium (Debian package chromium) and Playwright (pip install playwright).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import charnn

VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # Tiny Shakespeare's 65


def make_model(cell: str, hidden: int, layers: int) -> charnn.Model:
    model = charnn.init_model({"data": {"text": VOCAB}, "model": {"cell": cell, "hidden_size": hidden,
                                                                 "num_layers": layers}}, vocabulary=VOCAB)
    ckpt = model._ckpt
    ckpt.params = {k: v.astype(np.float32) for k, v in ckpt.params.items()}
    return model


def time_exports(model: charnn.Model, folder: Path, repeats: int) -> None:
    for fmt, name in (("safetensors", "m.safetensors"), ("onnx", "m.onnx"), ("web", "m.html"), ("hf", "hf")):
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            try:
                done = charnn.export(model, folder / name, format=fmt, force=True)
            except charnn.CharnnError as e:
                print(f"  {fmt:<12} skipped: {e}")
                break
            times.append(time.perf_counter() - start)
        else:
            print(f"  {fmt:<12} {statistics.median(times):6.3f} s   {done.bytes:>12,} bytes ({done.dtype})")


def time_page(model: charnn.Model, folder: Path, chars: int, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        for dtype in ("float16", "float32"):
            path = charnn.export(model, folder / f"page-{dtype}.html", format="web", dtype=dtype, force=True).path
            page = browser.new_page()
            start = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_function("window.charnn !== undefined")
            load_s = time.perf_counter() - start
            for kernel in ("wasm", "javascript"):
                page.evaluate(f"window.charnn.useWasm({'true' if kernel == 'wasm' else 'false'})")
                page.evaluate("window.charnn.generate({seed: 'T', length: 200, greedy: true})")  # warm up the JIT
                rates = page.evaluate(f"""() => {{
                    const out = [];
                    for (let r = 0; r < {repeats}; r++) {{
                        const t = performance.now();
                        window.charnn.generate({{seed: 'T', length: {chars}, greedy: true}});
                        out.push({chars} / ((performance.now() - t) / 1000));
                    }}
                    return out; }}""")
                print(f"  {dtype}  {kernel:<10}  {statistics.median(rates):8,.0f} chars/s  (runs: "
                      f"{', '.join(f'{r:,.0f}' for r in rates)}; page {os.path.getsize(path) / 1e6:.2f} MB, "
                      f"opened in {load_s:.2f} s)")
            page.close()
        browser.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm", choices=["rnn", "lstm", "gru"])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--chars", type=int, default=5000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model = make_model(args.cell, args.hidden, args.layers)
    print(f"charnn {charnn.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    print(f"model: {args.cell}, {args.layers} x {args.hidden} units, vocabulary {len(VOCAB)}, "
          f"{model.num_parameters:,} parameters (random weights)")
    with tempfile.TemporaryDirectory(prefix="charnn-bench-web-") as tmp:
        print(f"export (median of {args.repeats}):")
        time_exports(model, Path(tmp), args.repeats)
        print(f"web page, greedy generation of {args.chars:,} characters in headless Chromium (median of {args.repeats}):")
        time_page(model, Path(tmp), args.chars, args.repeats)


if __name__ == "__main__":
    main()
