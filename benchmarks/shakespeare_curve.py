"""The Tiny Shakespeare result: validation loss against wall-clock time, to CSV (and a plot).

Trains configs/shakespeare.yaml (or --config) with a validation pass every minute over the
whole validation tail, then scores the final and the best checkpoint with the exact
single-stream definition of `charnn eval`. Prints the configuration and chars/s.

    python benchmarks/shakespeare_curve.py --data ../shared/data/tinyshakespeare.txt
    python benchmarks/shakespeare_curve.py --set model.cell=lstm --set train.max_minutes=15
"""

from __future__ import annotations

import argparse
import csv
import math
import tempfile
import time
from pathlib import Path

from charnn.training import checkpoint
from charnn.config import dump_yaml
from charnn.settings import load_config
from charnn.nn.evaluate import evaluate_ids
from charnn.data.corpus import load_corpus
from charnn.training.loop import Callback, train

ROOT = Path(__file__).resolve().parent.parent


class Curve(Callback):
    def __init__(self):
        self.points = []

    def on_eval(self, m):
        self.points.append(m)
        print(f"  {m['elapsed_s'] / 60:5.2f} min  step {m['step']:6d}  val {m['val_loss']:.4f} nats/char "
              f"({m['val_bpc']:.3f} bits/char)", flush=True)

    def on_message(self, text):
        print(text, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "shakespeare.yaml"))
    ap.add_argument("--data", help="local copy of the corpus (else the config's url is downloaded)")
    ap.add_argument("--set", action="append", default=[], help="config override, e.g. train.lr=2e-3")
    ap.add_argument("--out", default="shakespeare_curve", help="output prefix for .csv and .png")
    ap.add_argument("--run-dir", help="where the run goes (default: a temporary folder)")
    args = ap.parse_args()
    overrides = list(args.set) + ["run.eval_every_minutes=1", "run.eval_every=0", "run.sample_every=0"]
    if args.data:
        overrides.append(f"data.path={Path(args.data).resolve()}")
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run_dir or tmp) / "run"
        overrides.append(f"run.dir={run_dir.parent / 'runs'}")
        cfg = load_config(args.config, overrides)
        print("config:\n" + dump_yaml(cfg))
        curve = Curve()
        start = time.perf_counter()
        result = train(cfg, run_dir, force=True, callback=curve)
        wall = time.perf_counter() - start
        corpus = load_corpus(cfg)
        final = checkpoint.load(run_dir / "latest.npz")
        best = checkpoint.load(run_dir / "best.npz")
        exact_final = evaluate_ids(final.params, corpus.val, cell=final.cell).nats_per_char
        exact_best = evaluate_ids(best.params, corpus.val, cell=best.cell).nats_per_char
    print(f"\nsteps {result.step}, {result.chars:,} chars in {result.elapsed_s:.0f} s of training "
          f"({result.chars / result.elapsed_s:,.0f} chars/s), {wall:.0f} s wall")
    print(f"train loss (smoothed) {result.train_loss:.4f}")
    print(f"validation, exact single stream over all {len(corpus.val):,} chars: final {exact_final:.4f} "
          f"nats/char ({exact_final / math.log(2):.3f} bits/char), best checkpoint {exact_best:.4f}")
    with open(f"{args.out}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["elapsed_min", "step", "chars", "val_loss", "val_bpc"])
        writer.writeheader()
        for p in curve.points:
            writer.writerow({"elapsed_min": round(p["elapsed_s"] / 60, 3), "step": p["step"], "chars": p["chars"],
                             "val_loss": round(p["val_loss"], 5), "val_bpc": round(p["val_bpc"], 5)})
    print(f"wrote {args.out}.csv")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["elapsed_s"] / 60 for p in curve.points], [p["val_loss"] for p in curve.points], marker="o")
    ax.set_xlabel("training time (minutes, 2 cores)")
    ax.set_ylabel("validation loss (nats/char)")
    layers = f" x {cfg.model.num_layers} layers" if cfg.model.num_layers > 1 else ""
    ax.set_title(f"Tiny Shakespeare, {cfg.model.cell} H={cfg.model.hidden_size}{layers}")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(f"{args.out}.png")
    print(f"wrote {args.out}.png")


if __name__ == "__main__":
    main()
