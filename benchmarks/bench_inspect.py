"""Time `charnn inspect-gradients`'s analysis on a 512-unit model with T = 100 (target: under 5 s).

    python benchmarks/bench_inspect.py [--hidden 512] [--steps 100] [--windows 8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from charnn.analysis import gradients
from charnn.nn import model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--windows", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"config: H={args.hidden} T={args.steps} windows={args.windows} V={args.vocab}, numpy {np.__version__}")
    for init, scale in (("uniform", 0.08), ("normal", 0.01), ("normal", 1.0)):
        params = model.init_params(args.vocab, args.hidden, 1, init=init, scale=scale, rng=rng)
        windows = rng.integers(0, args.vocab, (args.windows, args.steps + 1))
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            report = gradients.analyse(params, windows, "rnn")
            times.append(time.perf_counter() - start)
        layer = report.layers[0]
        print(f"init {init} {scale}: median {np.median(times):.2f} s (min {min(times):.2f}), verdict {layer.verdict}, "
              f"horizon {layer.horizon}, factor {layer.factor:.3f}")


if __name__ == "__main__":
    main()
