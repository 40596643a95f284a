"""Time loading a checkpoint: numpy's np.load (what charnn.training.checkpoint.load did before it judged
headers first) against today's checkpoint.load, in the same run, best of repeats.

    python benchmarks/bench_checkpoint.py [--cell lstm] [--hidden 512] [--layers 1] [--repeats 15]

The checkpoint is laid out as `charnn train` writes one (configs/shakespeare_lstm.yaml's
model: float32, AdamW state, B=32 carried state) with random weights, in a temporary folder.
The "np.load" line is the previous loader's work: every array through np.load, the meta JSON
parsed, parameters checked finite. `inspect` is what `charnn info` reads (headers and meta).
Repeats are interleaved so both see the same page cache and machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from charnn import __version__
from charnn.training import checkpoint
from charnn.nn import model
from charnn.config import Config, to_dict
from charnn.nn.optim import OptimizerSpec, init_state


def write_checkpoint(path: Path, cell: str, hidden: int, layers: int, vocab: int, batch: int) -> None:
    cfg = to_dict(Config())
    cfg["data"]["text"] = "x"
    cfg["run"]["name"] = "bench"
    cfg["model"].update(cell=cell, hidden_size=hidden, num_layers=layers)
    cfg["train"].update(optimizer="adamw", batch_size=batch)
    rng = np.random.default_rng(0)
    params = model.init_params(vocab, hidden, layers, rng=rng, cell=cell)
    optim = init_state(OptimizerSpec(optimizer="adamw"), params)
    for v in optim.values():
        v += 1  # not zeros, as after training
    hidden_state = [np.ones_like(h) for h in model.zero_state(params, batch, cell)]
    chars = [chr(33 + i) for i in range(vocab)]
    meta = {"charnn_version": __version__, "vocab": chars, "config": cfg, "step": 1000,
            "history": [{"step": s, "val_loss": 1.5} for s in range(0, 1000, 100)]}
    checkpoint.save(path, checkpoint.Checkpoint(params, meta, optim, hidden_state))


def old_load(path: Path) -> dict:
    """The previous loader's work: np.load of every array, meta parsed, parameters checked."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    json.loads(str(arrays.pop("meta")))
    model.check_finite({k: v for k, v in arrays.items() if not k.startswith(("optim.", "state."))})
    return arrays


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cell", default="lstm")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=65)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.npz"
        write_checkpoint(path, args.cell, args.hidden, args.layers, args.vocab, args.batch)
        print(f"config: cell={args.cell} H={args.hidden} L={args.layers} V={args.vocab} B={args.batch} float32 "
              f"adamw, file {os.path.getsize(path) / 2**20:.1f} MiB; numpy {np.__version__}, "
              f"{os.cpu_count()} CPUs, best of {args.repeats} interleaved repeats")
        ways = {"np.load (before)": old_load, "checkpoint.load": checkpoint.load,
                "checkpoint.inspect": checkpoint.inspect}
        times: dict[str, list[float]] = {name: [] for name in ways}
        for _ in range(args.repeats):
            for name, load in ways.items():
                start = time.perf_counter()
                load(path)
                times[name].append(time.perf_counter() - start)
        base = min(times["np.load (before)"])
        for name, ts in times.items():
            print(f"{name:20s} best {1000 * min(ts):7.2f} ms  median {1000 * np.median(ts):7.2f} ms  "
                  f"({min(ts) / base:.2f}x np.load)")


if __name__ == "__main__":
    main()
