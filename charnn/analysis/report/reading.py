"""What a run learned, as numbers: its logs, and its best model read over a stretch of text.

`load_run` reads a run directory (config.yaml, metrics.jsonl, samples.jsonl, best.npz);
`read_text` runs the checkpoint over a text once and keeps, per character, what each unit
showed, each gate's value, the model's surprisal and its five likeliest next characters;
`pick_units` finds, for simple properties of the text (inside quotes, inside brackets,
position in the line, ...), the unit whose activation follows each best (Karpathy, Johnson
and Fei-Fei, "Visualizing and Understanding Recurrent Networks", 2015); `gate_saturation`
counts how often each gate is nearly shut or wide open. analysis.py gathers them for a run;
page.py draws them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charnn.nn import cells
from charnn.training import checkpoint
from charnn.nn import model
from charnn.errors import CharnnError, ParameterError
from charnn.config import Config

SATURATED = 0.1  # a gate below this is "left-saturated" (nearly shut), above 1 - SATURATED "right-saturated"
MIN_CORRELATION = 0.3  # a unit "follows" a property only if |r| reaches this; weaker ones are noise to the eye


@dataclass
class Run:
    """What a run directory holds; a missing checkpoint is None (the page then shows curves only)."""

    path: Path
    config: Config
    steps: list[dict]  # metrics.jsonl lines of training steps
    evals: list[dict]  # metrics.jsonl lines of validation passes
    samples: list[dict]  # samples.jsonl: the training previews
    best: checkpoint.Checkpoint | None
    skipped_lines: int = 0  # metrics or samples lines that could not be read (cut short by a crash)
    final_step: int | None = None  # the step latest.npz holds: where training stopped (logs skip steps)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def clip_threshold(self) -> float | None:
        """The gradient norm training clipped at (None when clipping was off or by value)."""
        t = self.config.train
        return t.grad_clip if t.grad_clip and t.clip_mode == "norm" else None

    def summary(self) -> dict:
        """Steps, characters, time and losses, from the logs (and the checkpoint when there is one)."""
        records = self.steps + self.evals
        logged = max(records, key=lambda r: r["step"]) if records else {}
        vals = [e["val_loss"] for e in self.evals if isinstance(e.get("val_loss"), (int, float))]
        best = min(vals) if vals else None
        elapsed = max((r.get("elapsed_s", 0) for r in records), default=0)
        steps = self.final_step if self.final_step is not None else logged.get("step", 0)
        # characters per step from the logs (every record has both), to count what the unlogged last steps read
        per_step = logged.get("chars", 0) / logged["step"] if logged.get("step") else 0
        chars = round(steps * per_step)
        return {"run_dir": str(self.path), "steps": steps, "chars": chars, "elapsed_s": elapsed,
                "chars_per_s": chars / elapsed if elapsed else None, "best_val_loss": best,
                "last_val_loss": vals[-1] if vals else None}


def _read_jsonl(path: Path) -> tuple[list[dict], int]:
    """The readable lines of a JSON-lines file, and how many were not (a line cut short by a crash)."""
    if not path.exists():
        return [], 0
    good, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            bad += 1
            continue
        if isinstance(record, dict) and isinstance(record.get("step"), int):
            good.append(record)
        elif line.strip():
            bad += 1
    return good, bad


def load_run(path: str | Path) -> Run:
    """Read a run directory; one that is not a run is a one-line error."""
    path = Path(path)
    if not path.is_dir():
        raise CharnnError(f"{path} is not a run directory (it does not exist or is a file); "
                          "give the folder a run wrote, e.g. runs/hello")
    config_path = path / "config.yaml"
    if not config_path.is_file():
        raise CharnnError(f"{path} is not a run directory: it has no config.yaml; give a folder `charnn train` wrote")
    from charnn.config import read_yaml
    from charnn.settings import from_dict

    raw = read_yaml(config_path)
    if not isinstance(raw, dict):
        raise CharnnError(f"{config_path} is not a run's config (not a mapping); the run directory is damaged")
    config = from_dict(raw, source=str(config_path))
    metrics, bad_metrics = _read_jsonl(path / "metrics.jsonl")
    samples, bad_samples = _read_jsonl(path / "samples.jsonl")
    best = checkpoint.load(path / "best.npz") if (path / "best.npz").exists() else None
    final_step = checkpoint.inspect(path / "latest.npz")[0].get("step") if (path / "latest.npz").exists() else None
    return Run(path, config, [m for m in metrics if "train_loss" in m], [m for m in metrics if "val_loss" in m],
               samples, best, bad_metrics + bad_samples, final_step)


# ---- the model over a text ----------------------------------------------------------------------


@dataclass
class TextReading:
    """One pass of a model over a text, from a zero state; per character i, after reading it."""

    text: str  # the model's symbols
    units: np.ndarray  # (L, n, H): what each unit shows (its output, or the LSTM's tanh(c))
    gates: dict  # (layer, gate) -> (n, H) activations (gated cells)
    surprisal: np.ndarray  # (n,): -ln p(c_i | c_<i); nan at i = 0, which nothing predicts
    top_ids: np.ndarray  # (n, 5): the likeliest next characters after reading c_i
    top_probs: np.ndarray  # (n, 5): their probabilities
    cell: str
    layers: int = field(init=False)

    def __post_init__(self) -> None:
        self.layers = self.units.shape[0]


def read_text(ckpt: checkpoint.Checkpoint, text: str, top: int = 5) -> TextReading:
    """Run the checkpoint over `text` once (in its own dtype, one stream) and keep what the page shows."""
    vocab = ckpt.vocab
    unknown = vocab.unknown_chars(text)
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise CharnnError(f"the report text has {len(unknown)} character{'s' if len(unknown) != 1 else ''} outside "
                          f"the model's vocabulary: {shown}; "
                          "give a text with only the characters the model was trained on")
    if len(text) < 2:
        raise CharnnError("the report text needs at least 2 characters")
    ids = vocab.encode(text)
    params = ckpt.params
    c = cells.get(ckpt.cell)
    targets = np.append(ids[1:], 0)  # the last position has no next character: its target is unused
    _, _, cache = model.forward(params, ids[None, :], targets[None, :],
                                model.zero_state(params, 1, ckpt.cell), cell=ckpt.cell)
    units = np.stack([c.unit_values(cc)[:, 0] for cc in cache.cell_caches]).astype(np.float64)
    gates = {(layer, name): g[:, 0].astype(np.float64) for layer, cc in enumerate(cache.cell_caches)
             for name, g in c.gate_values(cc).items()}
    probs = cache.probs.astype(np.float64)  # (n, V): row i predicts character i + 1
    surprisal = np.full(len(ids), np.nan)
    surprisal[1:] = -np.log(probs[np.arange(len(ids) - 1), ids[1:]])
    top = min(top, vocab.size)
    top_ids = np.argsort(-probs, axis=1, kind="stable")[:, :top]
    return TextReading(text, units, gates, surprisal, top_ids, np.take_along_axis(probs, top_ids, axis=1), ckpt.cell)


# ---- interpretable units ------------------------------------------------------------------------------


def properties(text: str) -> dict[str, np.ndarray]:
    """Simple properties of the text at each character (after reading it), as 0/1 or counts."""
    n = len(text)
    quote, depth, column = np.zeros(n), np.zeros(n), np.zeros(n)
    inside, level, col = 0, 0, 0
    for i, ch in enumerate(text):
        if ch == '"':
            inside = 1 - inside
        elif ch in "“«":
            inside = 1
        elif ch in "”»":
            inside = 0
        level = level + 1 if ch in "([{" else max(0, level - 1) if ch in ")]}" else level
        col = 0 if ch == "\n" else col + 1
        quote[i], depth[i], column[i] = inside, level > 0, col
    letters = np.array([ch.isalpha() for ch in text])
    word_start = letters & ~np.concatenate([[False], letters[:-1]])
    return {
        "inside quotes": quote,
        "inside brackets": depth,
        "position in the line": column,
        "start of a word": word_start.astype(float),
        "upper-case": np.array([ch.isupper() for ch in text], float),
        "after a newline": np.array([ch == "\n" for ch in text], float),
    }


def _correlations(values: np.ndarray, prop: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of values (n, U) with prop (n,); 0 for a constant column."""
    v = values - values.mean(axis=0)
    p = prop - prop.mean()
    denom = np.sqrt((v * v).sum(axis=0) * (p * p).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, (v * p[:, None]).sum(axis=0) / denom, 0.0)


def pick_units(reading: TextReading, min_correlation: float = MIN_CORRELATION) -> list[dict]:
    """For each property the text shows (not constant), the unit that follows it best, if its |r|
    reaches min_correlation: {layer, unit, property, correlation}, the correlation signed (a
    unit may light up outside quotes instead)."""
    L, n, H = reading.units.shape
    flat = reading.units.transpose(1, 0, 2).reshape(n, L * H)
    picked = []
    for name, prop in properties(reading.text).items():
        if prop.std() == 0:
            continue  # e.g. a text without quotes: nothing to follow
        corr = _correlations(flat, prop)
        best = int(np.argmax(np.abs(corr)))
        if abs(corr[best]) < min_correlation:
            continue
        picked.append({"layer": best // H, "unit": best % H, "property": name, "correlation": float(corr[best])})
    return picked


def gate_saturation(reading: TextReading) -> list[dict]:
    """For every sigmoid gate and unit, the fraction of characters at which it is left-saturated
    (< SATURATED, nearly shut) and right-saturated (> 1 - SATURATED, wide open)."""
    out = []
    sigmoids = cells.get(reading.cell).sigmoid_gates  # the tanh candidates are values, not gates
    for (layer, gate), g in reading.gates.items():
        if gate not in sigmoids:
            continue
        left, right = (g < SATURATED).mean(axis=0), (g > 1 - SATURATED).mean(axis=0)
        out += [{"layer": layer, "gate": gate, "unit": u, "left": float(left[u]), "right": float(right[u])}
                for u in range(g.shape[1])]
    return out


def check_units_option(units: int, reading: TextReading) -> None:
    total = reading.units.shape[0] * reading.units.shape[2]
    if not 1 <= units <= total:
        raise ParameterError("{units} must be between 1 and {total} (the model's layers x units), got {got}",
                             total=total, got=units)


def bits(nats: float | None) -> float | None:
    return None if nats is None else nats / math.log(2)
