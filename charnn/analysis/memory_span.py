"""The memory-span experiment: how far back can each cell remember?

Each cell (about 19.5k parameters each: rnn H=130, lstm H=64, gru H=74, mlp sized for its W) is trained on
`charnn data synth delay` texts with a curriculum: K = 2, then K = 5 starting from the K = 2
weights, and so on, each stage with its own time budget (the learning rate decays from 3e-3
to 1e-4 over it) and seq_len >= 2K (truncated BPTT cannot learn a dependency longer than its
window); the mlp (model.context W) sees only its last W characters. The mlp trains each K
from scratch with AdamW weight decay (MLP_SETTINGS): it has no recurrence for a curriculum to
build on, and its W*V inputs of mostly random letters let it overfit the training text
within a minute (measured at K = 10, W = 16: 72% after the K = 2, 5 stages, 89% from
scratch in 80 s and 70% in 300 s without weight decay; 94% and 92% with it). After each stage it
records the fraction of the memory-recoverable information learned on held-out text,

    fraction = (nomem - model) / (nomem - best)       (oracle losses from charnn.data.synth)

and the memory horizon inspect-gradients measures on the trained model (T = 100). Every
(cell, seed) runs every stage; the seed is the run's (initialisation and dropout),
the texts are the same for every seed.
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from charnn.nn import cells
from charnn.training import checkpoint
from charnn.analysis import gradients
from charnn.data import synth
from charnn.settings import load_config
from charnn.data.corpus import load_corpus
from charnn.errors import CharnnError, ParameterError
from charnn.nn import model
from charnn.nn.evaluate import evaluate_ids
from charnn.files import write_text_atomically
from charnn.analysis import figures
from charnn.training.loop import train

PARAMETERS = 19_500  # every cell at about this size: rnn H=130, lstm 64, gru 74, the mlp (W=16) 127
SYMBOLS = 9  # the delay texts' vocabulary
MLP_CONTEXT = 16
# a cell without recurrence has nothing for a curriculum to build on: it trains each K from scratch,
# with weight decay (see the module docstring)
FEED_FORWARD_SETTINGS = ("train.optimizer=adamw", "train.weight_decay=0.1")


def hidden_for(cell: str, context: int = MLP_CONTEXT, parameters: int = PARAMETERS, symbols: int = SYMBOLS) -> int:
    """The hidden size whose one-layer model has closest to `parameters` parameters."""
    window = context if cells.get(cell).windowed else 1

    def count(H: int) -> int:
        return sum(int(np.prod(s)) for s in model.param_shapes(symbols, H, 1, cell, window).values())

    H = 1
    while count(H + 1) <= parameters:
        H += 1
    return H if parameters - count(H) <= count(H + 1) - parameters else H + 1


def check_cells(names: list[str]) -> None:
    """Cells the experiment can compare: any registered one."""
    unknown = [name for name in names if name not in cells.CELLS]
    if unknown or not names:
        raise ParameterError("{cells} {got!r}: choose among {choices}", got=",".join(names),
                             choices=", ".join(cells.CELLS))


FULL = ((2, 40), (5, 40), (10, 80), (20, 100), (40, 120), (80, 150))  # (K, seconds of training)
QUICK = ((5, 10), (20, 25))  # K = 20 lies beyond the Elman network's horizon and within the LSTM's
TEXT_CHARS = 400_000
FIELDS = ("cell", "K", "seed", "params", "seconds", "steps", "loss", "best", "nomem", "fraction", "horizon")


def parse_stages(text: str) -> tuple[tuple[int, float], ...]:
    """'5:40,10:60' -> ((5, 40.0), (10, 60.0)): K and seconds per stage, in curriculum order."""
    stages = []
    for item in text.split(","):
        lag, sep, seconds = item.strip().partition(":")
        try:
            stage = (int(lag), float(seconds))
        except ValueError:
            raise CharnnError(f"--stages {text!r}: expected K:seconds pairs, e.g. 5:40,10:60") from None
        if not sep or stage[0] < 2 or stage[1] <= 0:
            raise CharnnError(f"--stages {text!r}: each stage is K:seconds with K >= 2 and seconds > 0")
        stages.append(stage)
    return tuple(stages)


def stage_overrides(cell: str, lag: int, seconds: float, data: Path, runs: Path, init_from: Path | None,
                    seed: int, hidden: int | None, context: int = MLP_CONTEXT) -> list[str]:
    """One stage's training settings, as overrides of an empty config."""
    c = cells.get(cell)
    size = hidden or hidden_for(cell, context)
    window = [f"model.context={context}"] if c.windowed else []
    settings = [] if c.recurrent else list(FEED_FORWARD_SETTINGS)
    return window + settings + [
            f"data.path={data}", "data.val_fraction=0.1", f"model.cell={cell}",
            f"model.hidden_size={size}", "train.batch_size=32", f"train.seq_len={max(64, 2 * lag)}",
            "train.steps=10000000", f"train.max_minutes={seconds / 60}", "train.lr=3e-3", "train.lr_schedule=cosine",
            "train.min_lr=1e-4", "train.grad_clip=1.0", f"run.name={cell}-s{seed}-K{lag}", f"run.dir={runs}",
            "run.eval_every=0", "run.checkpoint_every=0", "run.log_every=100", f"run.seed={seed}",
            f"run.init_from={init_from}" if init_from else "run.init_from=null"]


def _score(ckpt_path: Path, cfg, text: synth.SynthText) -> dict:
    params = checkpoint.load(ckpt_path).params
    corpus = load_corpus(cfg)
    val = corpus.val
    loss = evaluate_ids(params, val, cell=cfg.model.cell).nats_per_char
    scored = slice(len(corpus.train), len(corpus.train) + len(val) - 1)  # the oracles' losses of val[1:]
    best, nomem = float(text.best[scored].mean()), float(text.nomem[scored].mean())
    if cells.get(cfg.model.cell).recurrent:
        windows = gradients.sample_windows(val, 100, 4, np.random.default_rng(0))
        horizon = gradients.analyse(params, windows, cfg.model.cell).layers[0].horizon
        horizon = "beyond 100" if horizon is None else horizon
    else:
        horizon = f"context {cfg.model.context}"  # no recurrence: it sees exactly this far
    return {"params": sum(p.size for p in params.values()), "loss": round(loss, 4), "best": round(best, 4),
            "nomem": round(nomem, 4), "fraction": round(synth.fraction_learned(loss, best, nomem), 3),
            "horizon": horizon}


def run(cell_names, stages, seeds, overrides=(), hidden: int | None = None, text_chars: int | None = None,
        context: int = MLP_CONTEXT, log: Callable[[str], None] = lambda message: None,
        on_row: Callable[[list], None] = lambda rows: None, runs_dir: str | Path | None = None) -> list[dict]:
    """Train every (cell, seed) through the curriculum; one row per stage (on_row gets the rows so far
    after each, to write them as they grow). The stages' runs (<cell>-s<seed>-K<K>/) go to a
    temporary folder removed at the end, or to `runs_dir` to keep them."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = Path(runs_dir) if runs_dir is not None else tmp / "runs"
        empty = tmp / "base.yaml"
        empty.write_text("{}\n")
        texts = {}
        for lag, _ in stages:
            texts[lag] = synth.generate("delay", lag, text_chars or TEXT_CHARS, seed=lag)
            (tmp / f"delay{lag}.txt").write_text(texts[lag].text)
        for cell in cell_names:
            for seed in seeds:
                previous = None
                for lag, seconds in stages:
                    base = stage_overrides(cell, lag, seconds, tmp / f"delay{lag}.txt", runs, previous, seed, hidden,
                                           context)
                    cfg = load_config(empty, base + list(overrides))
                    result = train(cfg, runs / cfg.run.name, force=True)
                    last = runs / cfg.run.name / "latest.npz"
                    previous = last if cells.get(cell).recurrent else None  # the curriculum is for recurrent cells
                    rows.append({"cell": cell, "K": lag, "seed": seed, "seconds": round(result.elapsed_s, 1),
                                 "steps": result.step, **_score(last, cfg, texts[lag])})
                    on_row(rows)
                    log(_row_line(rows[-1]))
    return rows


def _row_line(row: dict) -> str:
    return (f"{row['cell']:5s} seed {row['seed']} K={row['K']:3d}: {row['steps']} steps in {row['seconds']:.0f} s, "
            f"loss {row['loss']:.4f} (best {row['best']:.4f}, no memory {row['nomem']:.4f}) -> "
            f"{100 * row['fraction']:.0f}% learned, horizon {row['horizon']}")


def summary(rows: list[dict]) -> list[dict]:
    """Per (cell, K): mean, min and max of the fraction learned over the seeds, and the horizons."""
    out = []
    for cell in dict.fromkeys(r["cell"] for r in rows):
        for lag in sorted({int(r["K"]) for r in rows if r["cell"] == cell}):
            group = [r for r in rows if r["cell"] == cell and int(r["K"]) == lag]
            fractions = [float(r["fraction"]) for r in group]
            out.append({"cell": cell, "K": lag, "seeds": len(group), "mean": sum(fractions) / len(fractions),
                        "min": min(fractions), "max": max(fractions), "horizons": [r["horizon"] for r in group]})
    return out


def write_csv(rows: list[dict], path: str | Path) -> None:
    lines = [",".join(FIELDS)] + [",".join(str(r[k]) for k in FIELDS) for r in rows]
    write_text_atomically(path, "\n".join(lines) + "\n")


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def plot(rows: list[dict], path: str | Path) -> None:
    """Mean fraction learned against K per cell, the seeds' range as a bar; the same numbers as the table."""
    figures.to_file(figures.memory_span(summary(rows)), path)
