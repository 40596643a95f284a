"""Synthetic texts whose next character is predictable only by remembering something K steps back.

Each generator also scores its own text with two oracles that know the generating process:
`best` remembers everything (the lowest loss any model can reach) and `nomem` knows the
timing of every event but not the remembered symbol. Their gap is the information that
memory across K steps recovers, so a model's loss reads as "fraction of it learned":

    fraction = (nomem - model) / (nomem - best)

delay     random letters; '^' marks the next letter, which recurs exactly K characters
          after it (one mark pending at a time). Remembering it saves ln(letters) nats.
brackets  random filler letters with nested brackets of four kinds; each closing bracket
          matches the most recent unclosed one and comes at most K characters after its
          opening. Remembering the kind saves ln 4 nats per closing bracket.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charnn.errors import CharnnError, ParameterError

TASKS = ("delay", "brackets")
LETTERS = "abcdefgh"
MARK = "^"
OPENERS, CLOSERS = "([{<", ")]}>"


@dataclass(frozen=True)
class SynthText:
    task: str
    lag: int
    text: str
    best: np.ndarray  # oracle -ln p of each character 1..n-1, remembering everything
    nomem: np.ndarray  # the same for the oracle that forgets the remembered symbol

    def summary(self, start: int = 1) -> dict:
        """Mean oracle losses (nats/char) over the predictions of characters start..n-1."""
        best, nomem = float(self.best[start - 1 :].mean()), float(self.nomem[start - 1 :].mean())
        return {"task": self.task, "lag": self.lag, "chars": len(self.text), "best_nats_per_char": best,
                "nomem_nats_per_char": nomem, "recoverable_nats_per_char": nomem - best}


def fraction_learned(model_loss: float, best: float, nomem: float) -> float:
    """Share of the memory-recoverable information a model captured (1 = all, 0 = none)."""
    return (nomem - model_loss) / (nomem - best) if nomem > best else float("nan")


def delay(lag: int, length: int, rng: np.random.Generator, mark_prob: float = 0.2) -> SynthText:
    """Random letters; '^' + letter x, and x again exactly `lag` characters after that letter."""
    m = len(LETTERS)
    chars, best, nomem = [], [], []
    due_at, due_char = -1, ""  # the pending repeat
    for t in range(length):
        if t == due_at:
            c, p_best, p_nomem = due_char, 1.0, 1.0 / m
            due_at = -1
        elif t > 0 and chars[-1] == MARK:
            c = LETTERS[rng.integers(m)]
            p_best = p_nomem = 1.0 / m
            due_at, due_char = t + lag, c
        elif due_at < 0 and t + 1 < length and rng.random() < mark_prob:
            c, p_best = MARK, mark_prob
            p_nomem = p_best
        else:
            c = LETTERS[rng.integers(m)]
            p_best = p_nomem = ((1 - mark_prob) if due_at < 0 else 1.0) / m
        chars.append(c)
        best.append(-math.log(p_best))
        nomem.append(-math.log(p_nomem))
    return SynthText("delay", lag, "".join(chars), np.array(best[1:]), np.array(nomem[1:]))


def brackets(lag: int, length: int, rng: np.random.Generator, p_open: float = 0.15, p_close: float = 0.15,
             max_depth: int = 4) -> SynthText:
    """Filler letters and nested brackets; a bracket closes at most `lag` characters after it opened."""
    m, kinds = len(LETTERS), len(OPENERS)
    chars, best, nomem = [], [], []
    stack: list[tuple[int, int]] = []  # (kind, position opened)
    for t in range(length):
        # the oldest bracket must close by `lag`; all above it close first, one per step
        depth = len(stack)
        forced = depth > 0 and t - stack[0][1] >= lag - (depth - 1)
        # opening deepens the stack, so the oldest must still have time for one more closing step
        can_open = not forced and depth < max_depth and (depth == 0 or t - stack[0][1] <= lag - depth - 1)
        if forced:
            probs = {"close": 1.0}
        else:
            probs = {"close": p_close if stack else 0.0, "open": p_open if can_open else 0.0}
            probs["fill"] = 1.0 - probs["close"] - probs["open"]
        u = rng.random()
        event = "close" if forced or u < probs["close"] else "open" if u < probs["close"] + probs["open"] else "fill"
        if event == "close":
            kind, _ = stack.pop()
            c = CLOSERS[kind]
            p_best, p_nomem = probs["close"], probs["close"] / kinds
        elif event == "open":
            kind = int(rng.integers(kinds))
            stack.append((kind, t))
            c = OPENERS[kind]
            p_best = p_nomem = probs["open"] / kinds
        else:
            c = LETTERS[rng.integers(m)]
            p_best = p_nomem = probs["fill"] / m
        chars.append(c)
        best.append(-math.log(p_best))
        nomem.append(-math.log(p_nomem))
    return SynthText("brackets", lag, "".join(chars), np.array(best[1:]), np.array(nomem[1:]))


def generate(task: str, lag: int, length: int, seed: int = 0) -> SynthText:
    if task not in TASKS:
        raise CharnnError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if lag < 2:
        raise ParameterError("{lag} must be >= 2 (got {got})", got=lag)
    if length < 2 * lag + 2:
        raise ParameterError("{length} must be at least 2 x lag + 2 = {need} (got {got})", need=2 * lag + 2, got=length)
    rng = np.random.default_rng(seed)
    return (delay if task == "delay" else brackets)(lag, length, rng)


def write(synth: SynthText, path: str | Path, force: bool = False) -> dict:
    """Write the text and, beside it as PATH.json, the oracle losses; returns the summary.

    Existing files are kept unless `force`.
    """
    path = Path(path)
    oracle = path.with_name(path.name + ".json")
    for target in (path, oracle):
        if target.is_dir():
            raise CharnnError(f"{target} is a directory; give a file name with -o")
        if target.exists() and not force:
            raise CharnnError(f"{target} already exists; use --force to overwrite it, or choose another -o")
    summary = synth.summary()
    try:
        path.write_text(synth.text, encoding="utf-8")
        oracle.write_text(json.dumps(summary, indent=2) + "\n")
    except OSError as e:
        raise CharnnError(f"cannot write {path}: {e.strerror or e}") from None
    return summary
