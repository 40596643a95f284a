"""Dynamic evaluation (Krause et al. 2017, "Dynamic Evaluation of Neural Sequence Models").

The text is read segment by segment, the state carried from one to the next. Each segment is
first scored with the current weights and only then learned from, so every character is
predicted before any update that has seen it:

    theta_i = theta_{i-1} - lr * g_i / (sqrt(MS) + eps) + decay * (theta_0 - theta_{i-1}) * RMS_norm

g_i is the gradient of segment i's mean loss; MS the mean squared gradient per parameter
entry, measured on segments of the model's own training text (never the scored text), and
floored at a tenth of its parameter's mean so that a weight the sample never moved (the row
of a character it did not contain) takes a step of ordinary size, not a huge one;
RMS_norm = sqrt(MS) / mean(sqrt(MS)), decay * RMS_norm clipped at 1, pulls each weight back
toward the trained theta_0 fastest where gradients are largest. The model adapts to the
text it reads (its names, its style) while staying near what it learned.
"""

from __future__ import annotations

import numpy as np

from charnn.nn import model
from charnn.errors import ParameterError
from charnn.nn.workspace import Workspace

from charnn.analysis.dynamic_settings import DECAY, LR, SEGMENT_LEN, DynamicSettings  # noqa: F401  (their home)

MS_SEGMENTS = 100  # training segments averaged for the gradient scales
MS_FLOOR = 0.1  # MS at least this fraction of its parameter's mean MS
EPS = 1e-8


def _segment_grads(params, cell: str, x: np.ndarray, y: np.ndarray, h: list, ws: Workspace):
    """(mean loss of one segment, its gradients, the state after it), for one stream."""
    loss, last, cache = model.forward(params, x[None, :], y[None, :], h, cell=cell, ws=ws)
    grads, _ = model.backward(params, cache, ws)
    ws.release(cache)
    return loss, grads, last


def gradient_scales(params, cell: str, train_ids: np.ndarray, segment_len: int, segments: int = MS_SEGMENTS,
                    seed: int = 0) -> dict:
    """MS: the mean over random training segments (each from a zero state) of each squared gradient entry."""
    if len(train_ids) < segment_len + 1:
        raise ParameterError("the model's training text is shorter than one segment: lower {segment_len}")
    rng = np.random.default_rng(seed)
    ws = Workspace()
    ms = {k: np.zeros(v.shape, np.float64) for k, v in params.items()}
    for start in rng.integers(0, len(train_ids) - segment_len, segments):
        window = np.asarray(train_ids[start : start + segment_len + 1], np.int32)
        _, grads, _ = _segment_grads(params, cell, window[:-1], window[1:], model.zero_state(params, 1, cell), ws)
        for k, g in grads.items():
            ms[k] += g.astype(np.float64) ** 2 / segments
    return {k: np.maximum(v, MS_FLOOR * v.mean()) for k, v in ms.items()}


def dynamic_loss(params, cell: str, ids: np.ndarray, ms: dict, settings: DynamicSettings) -> float:
    """Mean -ln p over positions 1..n-1 of ids, read with dynamic evaluation (params are not changed)."""
    n = len(ids) - 1
    if n < settings.segment_len:
        raise ParameterError("the text has {n} characters, fewer than one segment of {segment_len} {length} + 1; "
                             "lower {segment_len} or give a longer text", n=n + 1, length=settings.segment_len)
    theta = {k: v.copy() for k, v in params.items()}
    scale = {k: (1.0 / (np.sqrt(v) + EPS)).astype(params[k].dtype) for k, v in ms.items()}
    rms = {k: np.sqrt(v) for k, v in ms.items()}
    mean_rms = np.mean(np.concatenate([r.ravel() for r in rms.values()]))
    pull = {k: np.minimum(settings.decay * r / max(mean_rms, EPS), 1.0).astype(params[k].dtype) for k, r in rms.items()}
    h, ws, total = model.zero_state(params, 1, cell), Workspace(), 0.0
    for start in range(0, n, settings.segment_len):
        window = np.asarray(ids[start : min(start + settings.segment_len, n) + 1], np.int32)
        loss, grads, h = _segment_grads(theta, cell, window[:-1], window[1:], h, ws)  # scored first ...
        total += loss * (len(window) - 1)
        for k, p in theta.items():  # ... then learned from
            p -= settings.lr * grads[k] * scale[k]
            p += pull[k] * (params[k] - p)
    return total / n
