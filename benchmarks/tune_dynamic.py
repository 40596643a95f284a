#!/usr/bin/env python
"""Choose dynamic evaluation's step size, decay and segment length on the model's own training text.

    python benchmarks/tune_dynamic.py CHECKPOINT [--chars 20000] [--lrs 1e-5,3e-5,1e-4] [--decays 0,1e-3,1e-2]
                                      [--segments 50]

Scores the last --chars characters of the checkpoint's training split (never its validation
or test text) statically and with every combination, and prints the table, best first. The
defaults in charnn/dynamic.py were chosen this way.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent.parent))

from charnn.training import checkpoint  # noqa: E402
from charnn.settings import from_dict  # noqa: E402
from charnn.data.corpus import load_corpus  # noqa: E402
from charnn.analysis.dynamic import DynamicSettings, dynamic_loss, gradient_scales  # noqa: E402
from charnn.nn.evaluate import evaluate_ids  # noqa: E402


def floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--chars", type=int, default=20000)
    ap.add_argument("--lrs", default="1e-5,3e-5,1e-4,3e-4")
    ap.add_argument("--decays", default="0,1e-3,1e-2")
    ap.add_argument("--segments", default="50")
    args = ap.parse_args()
    ckpt = checkpoint.load(args.checkpoint)
    train_ids = load_corpus(from_dict(ckpt.config)).train
    tail = train_ids[-args.chars:]
    print(f"{args.checkpoint}: {ckpt.cell} {ckpt.config['model']['hidden_size']} units; tuning on the last "
          f"{len(tail):,} characters of the training split")
    static = evaluate_ids(ckpt.params, tail, cell=ckpt.cell).nats_per_char
    print(f"static: {static:.4f} nats/char")
    rows = []
    for seg in [int(s) for s in args.segments.split(",")]:
        ms = gradient_scales(ckpt.params, ckpt.cell, train_ids[: -args.chars], seg)  # scales from other text
        for lr, decay in itertools.product(floats(args.lrs), floats(args.decays)):
            start = time.perf_counter()
            nats = dynamic_loss(ckpt.params, ckpt.cell, tail, ms, DynamicSettings(seg, lr, decay))
            rows.append((nats, seg, lr, decay))
            print(f"  segment {seg:4d} lr {lr:8.1e} decay {decay:7.1e}: {nats:.4f} ({nats - static:+.4f}) "
                  f"in {time.perf_counter() - start:.0f} s", flush=True)
    best = min(rows)
    print(f"best: segment {best[1]}, lr {best[2]:g}, decay {best[3]:g}: {best[0]:.4f} ({best[0] - static:+.4f})")


if __name__ == "__main__":
    main()
