"""Gradient clipping, optimizers and learning-rate schedules over dicts of arrays.

Optimizer running state is a flat dict ("slot.param_name" -> array) kept apart from the
hyper-parameters, so checkpoints store it as plain arrays. `apply_update` changes the
parameters and the state in place (no allocation per step) and touches nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


CLIP_MODES = ("norm", "value")


# ---- clipping (outside backward, so backward stays exact) --------------------------------


def global_norm(grads: dict[str, np.ndarray]) -> float:
    """L2 norm of all gradients taken together, accumulated in float64."""
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


def clip_gradients(grads: dict[str, np.ndarray], max_value: float, mode: str = "norm") -> tuple[float, bool]:
    """Clip in place; returns (global norm before clipping, whether clipping changed anything).

    norm: rescale all gradients so their global L2 norm is at most max_value.
    value: clamp every element to [-max_value, max_value] (min-char-rnn's +-5).
    max_value 0 turns clipping off.
    """
    norm = global_norm(grads)
    if max_value <= 0 or not math.isfinite(norm):  # a non-finite norm is the caller's to report
        return norm, False
    if mode == "norm":
        scale = clip_scale(norm, max_value)
        for g in grads.values() if scale is not None else ():
            g *= g.dtype.type(scale)
        return norm, scale is not None
    clipped = False  # mode "value"
    for g in grads.values():
        if np.max(np.abs(g), initial=0.0) > max_value:
            clipped = True
            np.clip(g, -max_value, max_value, out=g)
    return norm, clipped


def clip_scale(norm: float, max_value: float) -> float | None:
    """The factor norm clipping multiplies every gradient by, or None when it leaves them alone
    (clipping off, a norm within max_value, or a non-finite norm)."""
    if max_value <= 0 or not math.isfinite(norm) or norm <= max_value:
        return None
    return max_value / (norm + 1e-12)


# ---- optimizers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OptimizerSpec:
    """Hyper-parameters (never changed by a step), named as the config's train keys. The learning
    rate comes per step."""

    optimizer: str = "adam"
    momentum: float = 0.9  # sgd momentum
    nesterov: bool = False
    beta1: float = 0.9  # adam / adamw
    beta2: float = 0.999
    alpha: float = 0.95  # rmsprop decay of the squared-gradient average (char-rnn's)
    eps: float = 1e-8
    weight_decay: float = 0.0  # L2 on matrices; decoupled for adamw


# Each update changes one parameter p and its slots in place: update(p, g, slots, spec, lr, t, decays),
# g its gradient (scratch: may be overwritten), slots its running state by slot name, t the step
# count (1 at the first update), decays whether weight decay applies to it (matrices only).


def _sgd(p, g, slots, spec, lr, t, decays):
    f = p.dtype.type
    v = slots["v"]
    v *= f(spec.momentum)
    v += g
    if spec.nesterov:
        g += f(spec.momentum) * v
        p -= f(lr) * g
    else:
        p -= f(lr) * v


def _adagrad(p, g, slots, spec, lr, t, decays):
    f = p.dtype.type
    g2 = slots["g2"]
    g2 += g * g
    p -= f(lr) * g / (np.sqrt(g2) + f(spec.eps))


def _rmsprop(p, g, slots, spec, lr, t, decays):
    f = p.dtype.type
    g2 = slots["g2"]
    g2 *= f(spec.alpha)
    g2 += f(1 - spec.alpha) * g * g
    p -= f(lr) * g / (np.sqrt(g2) + f(spec.eps))


def _adam(p, g, slots, spec, lr, t, decays, decoupled=False):
    f = p.dtype.type
    m, v = slots["m"], slots["v"]
    m *= f(spec.beta1)
    m += f(1 - spec.beta1) * g
    v *= f(spec.beta2)
    v += f(1 - spec.beta2) * g * g
    # bias-corrected moments, eps added after correction (as PyTorch does)
    denom = np.sqrt(v)
    denom *= f(1 / math.sqrt(1 - spec.beta2**t))
    denom += f(spec.eps)
    if decoupled and decays:
        p *= f(1 - lr * spec.weight_decay)  # decoupled weight decay (AdamW)
    p -= f(lr / (1 - spec.beta1**t)) * m / denom


def _adamw(p, g, slots, spec, lr, t, decays):
    _adam(p, g, slots, spec, lr, t, decays, decoupled=True)


@dataclass(frozen=True)
class Optimizer:
    slots: tuple[str, ...]  # running state per parameter, e.g. Adam's first and second moments
    update: Callable  # the update above
    decoupled_decay: bool = False  # weight decay applied by the update itself (AdamW), not added to g


OPTIMIZERS: dict[str, Optimizer] = {
    "sgd": Optimizer(("v",), _sgd),
    "adagrad": Optimizer(("g2",), _adagrad),
    "rmsprop": Optimizer(("g2",), _rmsprop),
    "adam": Optimizer(("m", "v"), _adam),
    "adamw": Optimizer(("m", "v"), _adamw, decoupled_decay=True),
}


def init_state(spec: OptimizerSpec, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Zeroed running state: one array per slot and parameter, plus the step count."""
    slots = OPTIMIZERS[spec.optimizer].slots
    state = {f"{slot}.{name}": np.zeros_like(p) for slot in slots for name, p in params.items()}
    state["t"] = np.zeros((), dtype=np.int64)
    return state


def apply_update(
    spec: OptimizerSpec,
    params: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    state: dict[str, np.ndarray],
    lr: float,
) -> None:
    """One optimizer step, in place on params and state. May overwrite grads (scratch)."""
    state["t"] += 1
    t = int(state["t"])
    opt = OPTIMIZERS[spec.optimizer]
    wd = spec.weight_decay
    for name, p in params.items():
        g = grads[name]
        decays = bool(wd and p.ndim >= 2)  # matrices only: decaying biases only adds bias
        if decays and not opt.decoupled_decay:
            g += p.dtype.type(wd) * p  # coupled L2: part of the gradient
        opt.update(p, g, {slot: state[f"{slot}.{name}"] for slot in opt.slots}, spec, lr, t, decays)


# ---- learning-rate schedules ---------------------------------------------------------------


def _constant(s: "Schedule", step: int, progress: float) -> float:
    return s.lr


def _step_decay(s: "Schedule", step: int, progress: float) -> float:
    return s.lr * s.decay_rate ** ((step - s.warmup_steps) // s.decay_every)


def _cosine(s: "Schedule", step: int, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return s.min_lr + 0.5 * (s.lr - s.min_lr) * (1 + math.cos(math.pi * progress))


SCHEDULES: dict[str, Callable] = {"constant": _constant, "step": _step_decay, "cosine": _cosine}


@dataclass(frozen=True)
class Schedule:
    """lr(step): linear warm-up over warmup_steps, then constant, step decay or cosine to min_lr.

    Fields are named as the config's train keys."""

    lr: float
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr: float = 0.0  # cosine's floor
    decay_rate: float = 0.5  # step decay: multiply by this ...
    decay_every: int = 1000  # ... every this many steps (decay_every 1 gives exponential decay)

    def __call__(self, step: int, progress: float) -> float:
        """Learning rate for 0-based `step`; progress in [0, 1] is how much of the run is done."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        return SCHEDULES[self.lr_schedule](self, step, progress)


def from_config(cls, section):
    """An OptimizerSpec or a Schedule from the config's train section: each field from the key of its name."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in dataclasses.asdict(section).items() if k in names})
