"""How far back can each cell remember? rnn, lstm and gru on the `delay` task for growing K.

Each cell (about 19.5k parameters each: rnn H=130, lstm H=64, gru H=74) is trained on
`charnn data synth delay` texts with a curriculum: K = 2, then K = 5 starting from the K = 2
weights, and so on, each stage with its own time budget (the learning rate decays from 3e-3 to 1e-4 over it) and seq_len >= 2K (truncated BPTT
cannot learn a dependency longer than its window). After each stage the table reports the
fraction of the memory-recoverable information learned on held-out text,

    fraction = (nomem - model) / (nomem - best)       (oracle losses from charnn.synth)

and the memory horizon `charnn inspect-gradients` measures on the trained model (T = 100).

    python benchmarks/memory_span.py            # the full sweep, about 30 minutes on 2 cores
    python benchmarks/memory_span.py --quick    # K = 2, 5, 10 with short budgets, under 3 minutes
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np

from charnn import checkpoint, gradients, synth
from charnn.config import from_dict
from charnn.evaluate import evaluate_ids
from charnn.data import load_corpus
from charnn.train import train

CELLS = {"rnn": 130, "lstm": 64, "gru": 74}  # hidden sizes giving ~19.5k parameters with 9 symbols
FULL = {2: 40, 5: 40, 10: 80, 20: 100, 40: 120, 80: 150}  # K -> seconds of training
QUICK = {2: 12, 5: 12, 10: 16}
TEXT_CHARS = 400_000


def stage_config(cell: str, lag: int, seconds: float, data: Path, runs: Path, init_from: Path | None) -> dict:
    return {
        "data": {"path": str(data), "val_fraction": 0.1},
        "model": {"cell": cell, "hidden_size": CELLS[cell]},
        "train": {"batch_size": 32, "seq_len": max(64, 2 * lag), "steps": 10**7, "max_minutes": seconds / 60,
                  "lr": 3e-3, "lr_schedule": "cosine", "min_lr": 1e-4, "grad_clip": 1.0},
        "run": {"name": f"{cell}-K{lag}", "dir": str(runs), "eval_every": 0, "checkpoint_every": 0,
                "log_every": 100, "seed": 0, "init_from": str(init_from) if init_from else None},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="K = 2, 5, 10 with short budgets (< 3 minutes)")
    ap.add_argument("--cells", default="rnn,lstm,gru")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every stage's time budget")
    ap.add_argument("--out", default="memory_span", help="output prefix for .csv and .png")
    ap.add_argument("--replot", metavar="CSV", help="only redraw the picture from an earlier run's CSV")
    args = ap.parse_args()
    if args.replot:
        with open(args.replot) as f:
            plot(list(csv.DictReader(f)), f"{args.out}.png")
        return
    budgets = {k: v * args.scale for k, v in (QUICK if args.quick else FULL).items()}
    cells = args.cells.split(",")
    print(f"delay task, {TEXT_CHARS:,} chars per K, B=32, T=max(64, 2K), Adam 3e-3 cosine to 1e-4 within each "
          "stage, clip 1, curriculum over K")
    print("stage budgets (s): " + ", ".join(f"K={k}: {v:.0f}" for k, v in budgets.items()))
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        texts = {}
        for lag in budgets:
            texts[lag] = synth.generate("delay", lag, TEXT_CHARS, seed=lag)
            (tmp / f"delay{lag}.txt").write_text(texts[lag].text)
        for cell in cells:
            previous = None
            for lag, seconds in budgets.items():
                cfg = from_dict(stage_config(cell, lag, seconds, tmp / f"delay{lag}.txt", tmp / "runs", previous))
                result = train(cfg, tmp / "runs" / cfg.run.name, force=True)
                previous = tmp / "runs" / cfg.run.name / "latest.npz"
                params = checkpoint.load(previous).params
                val = load_corpus(cfg).val
                loss = evaluate_ids(params, val, cell=cell).nats_per_char
                n_train = TEXT_CHARS - len(val)
                best = float(texts[lag].best[n_train:].mean())
                nomem = float(texts[lag].nomem[n_train:].mean())
                fraction = synth.fraction_learned(loss, best, nomem)
                windows = gradients.sample_windows(val, 100, 4, np.random.default_rng(0))
                horizon = gradients.analyse(params, windows, cell).layers[0].horizon
                param_count = sum(p.size for p in params.values())
                rows.append({"cell": cell, "K": lag, "params": param_count, "seconds": round(result.elapsed_s, 1),
                             "steps": result.step, "loss": round(loss, 4), "best": round(best, 4),
                             "nomem": round(nomem, 4), "fraction": round(fraction, 3),
                             "horizon": "beyond 100" if horizon is None else horizon})
                print(f"{cell:5s} K={lag:3d}: {param_count} params, {result.step} steps in {result.elapsed_s:.0f} s, "
                      f"loss {loss:.4f} (best {best:.4f}, no memory {nomem:.4f}) -> {100 * fraction:.0f}% learned, "
                      f"horizon {rows[-1]['horizon']}", flush=True)
    print(f"\ntotal {time.perf_counter() - start:.0f} s\n")
    lags = list(budgets)
    print("fraction of the recoverable information learned (horizon from inspect-gradients, T=100)")
    print(f"{'K':>4} " + " ".join(f"{c:>18s}" for c in cells))
    for lag in lags:
        cellsrow = []
        for cell in cells:
            r = next(r for r in rows if r["cell"] == cell and r["K"] == lag)
            cellsrow.append(f"{100 * r['fraction']:6.0f}% (h {str(r['horizon']):>10s})")
        print(f"{lag:>4} " + " ".join(cellsrow))
    with open(f"{args.out}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}.csv")
    plot(rows, f"{args.out}.png")


def plot(rows: list[dict], path: str) -> None:
    """Fraction learned against K per cell; values below -25% are drawn at the floor."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    lags = sorted({int(r["K"]) for r in rows})
    cells = list(dict.fromkeys(r["cell"] for r in rows))
    fig, ax = plt.subplots(figsize=(6, 4))
    for cell in cells:
        ys = [100 * float(next(r["fraction"] for r in rows if r["cell"] == cell and int(r["K"]) == k)) for k in lags]
        ax.plot(lags, [max(y, -25) for y in ys], marker="o", label=cell)
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(lags, [str(k) for k in lags])
    ax.set_ylim(-30, 105)
    ax.set_xlabel("K: characters the model must remember across")
    ax.set_ylabel("% of recoverable information learned")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
