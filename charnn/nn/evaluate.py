"""The loss of a whole text under a model, in the one exact definition used to compare models.

    nats/char = mean over positions i >= 1 of -ln p(c_i | c_0 .. c_{i-1}),
starting from a zero state and carrying it through the whole text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from charnn.nn import model
from charnn.errors import CharnnError
from charnn.nn.workspace import Workspace

LN2 = math.log(2)  # nats -> bits


class PerCharLoss:
    """bits/char and perplexity, from a class's nats_per_char."""

    nats_per_char: float

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / LN2

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_char)


@dataclass(frozen=True)
class EvalResult(PerCharLoss):
    nats_per_char: float
    chars: int  # number of predicted characters: len(text) - 1

    def as_dict(self) -> dict:
        return {
            "nats_per_char": self.nats_per_char,
            "bits_per_char": self.bits_per_char,
            "perplexity": self.perplexity,
            "chars": self.chars,
        }


def _score(params: model.Params, cell: str, ids: np.ndarray, starts: np.ndarray, length: int, h: list,
           chunk_len: int, ws: Workspace, forward) -> tuple[float, list]:
    """Sum of -ln p of ids[s + i + 1] given ids[.. s + i] for i < length, one stream per start, state carried.

    Chunk by chunk, so only a chunk's ids are ever read (`ids` may be a memmap of any size).
    """
    total = 0.0
    for c in range(0, length, chunk_len):
        idx = starts[:, None] + np.arange(c, min(c + chunk_len, length))
        x, y = np.asarray(ids[idx], np.int32), np.asarray(ids[idx + 1], np.int32)
        loss, h, cache = forward(params, x, y, h, cell=cell, ws=ws)
        ws.release(cache)
        total += loss * idx.size  # forward gives the chunk's mean
    return total, h


def evaluate_ids(params: model.Params, ids: np.ndarray, *, cell: str, streams: int = 1, warmup: int = 256,
                 chunk_len: int = 256, ws: Workspace | None = None, forward=None) -> EvalResult:
    """Mean loss of one id sequence; streams=1 is the exact definition.

    With streams > 1 the text is cut into that many contiguous pieces scored side by side
    (one GEMM per step instead of one matrix-vector product). Each piece but the first
    starts from a zero state `warmup` characters early, unscored, so its state has forgotten
    the zero start by the time scoring begins; every position is still scored exactly once.
    The result matches the single-stream value closely (the README quotes the measured gap).
    forward: model.forward's stand-in, charnn.nn.fast.model.forward on the fast path.
    """
    n = len(ids) - 1
    if n < 1:
        raise CharnnError("the text needs at least 2 characters to be evaluated (one to predict)")
    per = n // max(streams, 1)
    if streams <= 1 or per <= warmup:
        streams, per = 1, n
    starts = np.arange(streams) * per
    h = model.zero_state(params, streams, cell)
    ws = ws or Workspace()
    forward = forward or model.forward
    if streams > 1 and warmup > 0:
        _, h = _score(params, cell, ids, starts - warmup, warmup, h, chunk_len, ws, forward)  # piece 0 has nothing before it ...
        for layer_state in h:
            layer_state[0] = 0  # ... and starts the text: a true zero state
    total, h = _score(params, cell, ids, starts, per, h, chunk_len, ws, forward)
    rest = n - streams * per  # the few positions past the last full piece continue its state
    if rest:
        more, _ = _score(params, cell, ids, np.array([streams * per]), rest, [s[-1:] for s in h], chunk_len, ws, forward)
        total += more
    return EvalResult(total / n, n)
