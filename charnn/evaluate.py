"""The loss of a whole text under a model, in the one exact definition used to compare models.

    nats/char = mean over positions i >= 1 of -ln p(c_i | c_0 .. c_{i-1}),
starting from a zero state and carrying it through the whole text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from charnn import model
from charnn.errors import CharnnError


@dataclass(frozen=True)
class EvalResult:
    nats_per_char: float
    chars: int  # number of predicted characters: len(text) - 1

    @property
    def bits_per_char(self) -> float:
        return self.nats_per_char / math.log(2)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_char)

    def as_dict(self) -> dict:
        return {
            "nats_per_char": self.nats_per_char,
            "bits_per_char": self.bits_per_char,
            "perplexity": self.perplexity,
            "chars": self.chars,
        }


def evaluate_ids(params: model.Params, ids: np.ndarray, chunk_len: int = 512) -> EvalResult:
    """Exact mean loss of one id sequence, in chunks (state carried) so memory stays bounded."""
    ids = np.asarray(ids)
    if len(ids) < 2:
        raise CharnnError("the text needs at least 2 characters to be evaluated (one to predict)")
    h = model.zero_state(params, 1)
    total = 0.0
    n = len(ids) - 1
    for start in range(0, n, chunk_len):
        stop = min(start + chunk_len, n)
        x = ids[start:stop][None, :]
        y = ids[start + 1 : stop + 1][None, :]
        loss, h, _ = model.forward(params, x, y, h)
        total += loss * (stop - start)  # forward gives the chunk's mean
    return EvalResult(total / n, n)
