#!/usr/bin/env python
"""How far back can each cell remember? rnn, lstm, gru and the mlp (W=16) on the `delay` task for growing K.

The experiment itself is charnn/memory_span.py (its docstring says what is measured), also run
by `charnn experiment memory-span`. This script runs it, prints the table (mean over seeds, and
their range), and writes the CSV and the picture, both from the same rows.

    python benchmarks/memory_span.py                         # K = 2..80, 4 cells, 3 seeds: about 110 minutes
    python benchmarks/memory_span.py --quick --seeds 0        # K = 5 and 20 with short budgets, under 3 minutes
    python benchmarks/memory_span.py --cells lstm --stages 5:40,10:60,20:80,40:110 --set model.gate_init=chrono
    python benchmarks/memory_span.py --replot memory_span.csv  # redraw the picture (and table) from a CSV
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from charnn.analysis import memory_span  # noqa: E402


def print_table(rows: list[dict]) -> None:
    groups = memory_span.summary(rows)
    cells = list(dict.fromkeys(g["cell"] for g in groups))
    print("fraction of the recoverable information learned: mean over seeds [min, max] "
          "(memory horizons from inspect-gradients, T = 100)")
    for lag in sorted({g["K"] for g in groups}):
        parts = []
        for cell in cells:
            g = next((g for g in groups if g["cell"] == cell and g["K"] == lag), None)
            parts.append("-" if g is None else f"{cell} {100 * g['mean']:4.0f}% [{100 * g['min']:.0f}, "
                         f"{100 * g['max']:.0f}] (h {', '.join(map(str, g['horizons']))})")
        print(f"K={lag:>3}  " + "   ".join(parts))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="K = 5 and 20 with short budgets")
    ap.add_argument("--cells", default="rnn,lstm,gru,mlp")
    ap.add_argument("--stages", help="K:seconds pairs in curriculum order, e.g. 5:40,10:60,20:80,40:110")
    ap.add_argument("--seeds", default="0,1,2", help="run seeds (initialisation), comma-separated")
    ap.add_argument("--set", action="append", default=[], help="config override for every stage, e.g. model.gate_init=chrono")
    ap.add_argument("--hidden", type=int, help="hidden size for every cell (default: ~19.5k parameters each)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every stage's time budget")
    ap.add_argument("--out", default="memory_span", help="output prefix for .csv and .png")
    ap.add_argument("--replot", metavar="CSV", help="only redraw the table and picture from an earlier run's CSV")
    args = ap.parse_args()
    if args.replot:
        rows = memory_span.read_csv(args.replot)
        print_table(rows)
        memory_span.plot(rows, f"{args.out}.png")
        print(f"wrote {args.out}.png")
        return
    stages = memory_span.parse_stages(args.stages) if args.stages else (memory_span.QUICK if args.quick else memory_span.FULL)
    stages = tuple((k, s * args.scale) for k, s in stages)
    cells, seeds = args.cells.split(","), [int(s) for s in args.seeds.split(",")]
    print(f"delay task, {memory_span.TEXT_CHARS:,} chars per K, B=32, T=max(64, 2K), Adam 3e-3 cosine to 1e-4 "
          f"within each stage, clip 1, curriculum over K; cells {cells}, seeds {seeds}, overrides {args.set}")
    print("stages (K: seconds): " + ", ".join(f"{k}: {s:.0f}" for k, s in stages))
    start = time.perf_counter()
    rows = memory_span.run(cells, stages, seeds, args.set, args.hidden, log=lambda m: print(m, flush=True))
    print(f"\ntotal {time.perf_counter() - start:.0f} s\n")
    print_table(rows)
    memory_span.write_csv(rows, f"{args.out}.csv")
    memory_span.plot(rows, f"{args.out}.png")
    print(f"wrote {args.out}.csv and {args.out}.png")


if __name__ == "__main__":
    main()
