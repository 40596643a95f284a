"""A feed-forward baseline (Bengio et al. 2003): the next character from the last W characters only.

    layer 0:  h_t = tanh([x_{t-W+1} | ... | x_t] W_x + b)     the W one-hot vectors concatenated
    above:    h_t = tanh(h_t^{below} W_x + b)
    head:     y_t = softmax(h_t W_hy + b_y)

The cell is a tanh layer with no recurrence: it carries no state (width 0). Reading a window of
W characters at layer 0 is the input encoder's job (charnn/nn/encoders.py, `Window`): it forms
[x_{t-W+1} | ... | x_t] W_x as W row lookups and carries the last W - 1 characters from one
chunk to the next. `windowed` tells the model to give this cell that encoder.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charnn.nn.cells.base import CellBase
from charnn.nn.workspace import Workspace


class MLPCache(NamedTuple):
    h: np.ndarray  # (T+1, B, H) outputs, h[0] unused (zero)
    buffers: tuple


class MLP(CellBase):
    name = "mlp"
    gates = 1
    input_weight, input_bias, recurrent_weight = "W_x", "b", None
    recurrent = False
    windowed = True
    memory_advice = "it sees exactly its model.context characters: widen the window, or use a recurrent cell"

    def param_shapes(self, fan_in: int, H: int) -> dict[str, tuple[int, ...]]:
        return {"W_x": (fan_in, H), "b": (H,)}

    def state_width(self, H: int) -> int:
        return 0

    def forward(self, xa: np.ndarray, state0: np.ndarray, p: dict, ws: Workspace):
        h = xa  # in place: the outputs are written over the input part (kept in buffers)
        h[0] = 0
        np.tanh(h[1:], out=h[1:])
        return h, state0.copy(), MLPCache(h, (h,))

    def backward(self, dh, cache: MLPCache, p: dict, ws: Workspace, dlast=None, trace=None):
        dh *= 1 - cache.h[1:] ** 2  # through tanh, in place; nothing flows back in time
        if trace is not None:
            trace["dh"], trace["da"] = dh.copy(), dh
        return dh, {}, np.zeros((dh.shape[1], 0), dh.dtype)

    def step(self, xa: np.ndarray, state: np.ndarray, p: dict):
        return np.tanh(xa), state

    def jacobian_product(self, M: np.ndarray, t: int, cache: MLPCache, p: dict) -> np.ndarray:
        return M  # a state of width 0: nothing to multiply

    def unit_values(self, cache: MLPCache) -> np.ndarray:
        return cache.h[1:]

    def gate_values(self, cache: MLPCache) -> dict:
        return {}

    # ---- the specification ------------------------------------------------------------------------

    def reference_step(self, p, x, state):
        h = np.tanh(x @ p["W_x"] + p["b"])  # no recurrence: the (empty) state passes through untouched
        return h, state, (x, h)

    def reference_step_back(self, p, saved, dh, dstate, grads):
        x, h = saved
        da = dh * (1 - h**2)
        grads["W_x"] += x.T @ da
        grads["b"] += da.sum(axis=0)
        return da @ p["W_x"].T, np.zeros_like(dstate)
