"""The loss: softmax cross-entropy of the next character, computed in place and kept finite.

    loss = mean over rows of -ln softmax(logits)[target]
"""

from __future__ import annotations

import numpy as np


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean -ln softmax(logits)[target] over rows, and the probabilities. Overwrites `logits`.

    Subtracting a constant from each row (its maximum, or the maximum of all rows when the
    logits span a safe range) leaves the probabilities unchanged and keeps exp finite, so
    logits of +-1e4 still give a finite loss and gradient.
    """
    N, V = logits.shape
    loss = softmax_cross_entropy_rows(logits, np.arange(0, N * V, V) + np.asarray(targets).reshape(N))
    return loss, logits


def softmax_cross_entropy_rows(z: np.ndarray, flat_targets: np.ndarray) -> float:
    """softmax_cross_entropy in place on z (N, V), z becoming the probabilities; flat_targets
    are the indices of the target entries in z's memory.

    Any per-row constant may be subtracted before exp. When the whole array spans less than
    `_SHIFT_SPAN` of its dtype (always so in practice) one shared constant, the global maximum,
    is as safe as the row maxima: every exp lies in [e^-span, 1], far from under- and overflow.
    That replaces a slow reduction over short rows by a fast one over the whole array. Huge
    logits fall back to the row maxima.
    """
    target_logits = shifted_exp(z, flat_targets)
    sums = z.sum(axis=1)
    loss = float(np.mean(np.log(sums, dtype=np.float64) - target_logits))
    z /= sums[:, None]
    return loss


def shifted_exp(z: np.ndarray, flat_targets: np.ndarray) -> np.ndarray:
    """z (N, V) -> exp(z - shift) in place, the shift the global or the row maxima as
    softmax_cross_entropy_rows says; returns the shifted target logits (float64), taken before
    the exp so a vanishing probability still gives a finite loss."""
    hi = z.max()
    span = hi - z.min()
    if span <= _SHIFT_SPAN.get(z.dtype.char, 0.0):
        z -= hi
    else:
        z -= z.max(axis=1, keepdims=True)
    target_logits = np.take(z.reshape(-1), flat_targets).astype(np.float64)
    np.exp(z, out=z)
    return target_logits


# well inside the range where exp(-span) is a normal number of the dtype (-ln(tiny) * 0.7)
_SHIFT_SPAN = {np.dtype(t).char: float(-np.log(np.finfo(t).tiny) * 0.7) for t in (np.float32, np.float64)}
