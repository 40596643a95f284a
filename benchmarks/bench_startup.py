#!/usr/bin/env python
"""How long `import charnn` and the command line take to start, in fresh processes.

    python benchmarks/bench_startup.py                        # this checkout
    python benchmarks/bench_startup.py --baseline /tmp/old    # and another (a git worktree), interleaved

Times `python -c "import charnn"`, `python -m charnn --version` and `python -m charnn sample --help`,
each in a new interpreter, repeats interleaved between the checkouts; prints medians and the
interpreter's own start-up (`python -c pass`) for reference.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = {"python -c pass": ["-c", "pass"], "import charnn": ["-c", "import charnn"],
            "charnn --version": ["-m", "charnn", "--version"], "charnn sample --help": ["-m", "charnn", "sample", "--help"]}


def once(checkout: Path, args: list[str]) -> float:
    env = dict(os.environ, PYTHONPATH=str(checkout), PYTHONDONTWRITEBYTECODE="1")
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], env=env, cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   check=True)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--baseline", type=Path, help="another checkout to time in the same run")
    args = ap.parse_args()
    checkouts = {"this": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    print(f"charnn start-up benchmark: python {platform.python_version()}, {os.cpu_count()} cpus, "
          f"{args.repeats} repeats, medians; checkouts: " + ", ".join(f"{k} {v}" for k, v in checkouts.items()))
    for label, argv in COMMANDS.items():
        times = {name: [] for name in checkouts}
        for _ in range(args.repeats):
            for name, path in checkouts.items():  # interleaved: drift hits both alike
                times[name].append(once(path, argv))
        row = "  ".join(f"{name} {statistics.median(t) * 1000:7.1f} ms" for name, t in times.items())
        print(f"  {label:22s} {row}")


if __name__ == "__main__":
    main()
