"""Corpus preparation at scale: throughput (MB/s) and peak resident memory against file size.

Generates a text of --mb megabytes (mostly ASCII words, with a sprinkling of multi-byte
characters unless --ascii), then runs `charnn data prepare`'s library function in a fresh
process and reports wall time, MB/s and peak RSS (target: RSS < 1.5x the file, >= 50 MB/s).

    python benchmarks/bench_prepare.py --mb 200
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = r"""
import json, resource, sys, time
from charnn.config import DataConfig
from charnn.data.prepare import prepare
t = time.perf_counter()
p = prepare(DataConfig(path=sys.argv[1]), sys.argv[2])
dt = time.perf_counter() - t
print(json.dumps({"seconds": dt, "vocab": p.vocab.size, "chars": int(len(p.ids)), "reused": p.reused,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_corpus(path: Path, megabytes: int, ascii_only: bool, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    words = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "it", "as", "was", "with", "be", "by",
             "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had",
             "they", "you", "were", "their", "one", "all", "we", "can", "her", "has", "there", "been", "if"]
    if not ascii_only:
        words += ["café", "naïve", "über", "smörgåsbord", "—", "“quoted”", "π", "🙂"]
    line_words = rng.choice(words, size=(2000, 12))
    block = "\n".join(" ".join(row) for row in line_words).encode() + b"\n"
    target = megabytes * 1_000_000
    with open(path, "wb") as f:
        written = 0
        while written < target:
            chunk = block[: target - written]
            f.write(chunk)
            written += len(chunk)


def run(path: Path, cache: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(cache)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="size of the generated text in MB")
    ap.add_argument("--ascii", action="store_true", help="ASCII only (the fast path)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path, cache = Path(tmp) / "corpus.txt", Path(tmp) / "cache"
        make_corpus(path, args.mb, args.ascii)
        size_mb = path.stat().st_size / 1e6
        print(f"file: {size_mb:.0f} MB ({'ascii' if args.ascii else 'utf-8 with multi-byte characters'})")
        for label in ("build", "reuse"):
            r = run(path, cache)
            print(f"{label}: {r['seconds']:.2f} s, {size_mb / r['seconds']:.0f} MB/s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"({r['peak_rss_mb'] / size_mb:.2f}x the file), {r['chars']:,} chars, vocab {r['vocab']}, "
                  f"reused={r['reused']}")


if __name__ == "__main__":
    main()
