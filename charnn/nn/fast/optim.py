"""Clipping and the update on the fast path: Adam and AdamW in one fused kernel pass per parameter
that also applies the clip factor and the weight decay, rounding exactly as charnn.nn.optim's
NumPy sequence (the tests check the parameters and moments bit for bit). Other optimizers, and
arrays the kernel cannot update in place, take charnn.nn.optim's own update.
"""

from __future__ import annotations

import math

import numpy as np

from charnn.nn.fast.chunk_kernels import adam_update
from charnn.nn.optim import OPTIMIZERS, OptimizerSpec, apply_update, clip_gradients, clip_scale, global_norm

F = np.float32
FUSED = ("adam", "adamw")


def clip(grads: dict, max_value: float, mode: str) -> tuple[float, bool, float]:
    """clip_gradients, except that norm clipping returns its factor instead of applying it:
    (global norm before clipping, whether clipping changed anything, the factor still to apply)."""
    if mode != "norm":
        norm, clipped = clip_gradients(grads, max_value, mode)
        return norm, clipped, 1.0
    norm = global_norm(grads)
    scale = clip_scale(norm, max_value)
    return norm, scale is not None, 1.0 if scale is None else scale


def update(spec: OptimizerSpec, params: dict, grads: dict, state: dict, lr: float, scale: float = 1.0) -> None:
    """apply_update(spec, params, grads, state, lr) on gradients still to be multiplied by `scale`."""
    arrays = [*params.values(), *grads.values(), *(v for k, v in state.items() if k != "t")]
    if spec.optimizer not in FUSED or not all(a.flags.c_contiguous and a.dtype == F for a in arrays):
        for g in grads.values() if scale != 1.0 else ():
            g *= g.dtype.type(scale)
        apply_update(spec, params, grads, state, lr)
        return
    state["t"] += 1
    t = int(state["t"])
    b1, b2, wd = spec.beta1, spec.beta2, spec.weight_decay
    moments = (F(b1), F(1 - b1), F(b2), F(1 - b2), F(1 / math.sqrt(1 - b2**t)), F(spec.eps), F(lr / (1 - b1**t)))
    decoupled = OPTIMIZERS[spec.optimizer].decoupled_decay
    for name, p in params.items():
        decays = bool(wd and p.ndim >= 2)  # matrices only, as apply_update
        l2 = F(wd) if decays and not decoupled else F(0)
        keep = F(1 - lr * wd) if decays and decoupled else F(1)
        adam_update(p.reshape(-1), grads[name].reshape(-1), state[f"m.{name}"].reshape(-1),
                    state[f"v.{name}"].reshape(-1), F(scale), l2, keep, *moments)
