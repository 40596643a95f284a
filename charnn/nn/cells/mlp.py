"""A feed-forward baseline (Bengio et al. 2003): the next character from the last W characters only.

    layer 0:  h_t = tanh([x_{t-W+1} | ... | x_t] W_x + b)     the W one-hot vectors concatenated
    above:    h_t = tanh(h_t^{below} W_x + b)
    head:     y_t = softmax(h_t W_hy + b_y)

W_x of layer 0 is (W*V, H), block j (rows j*V .. (j+1)*V) for the character j steps back, so
the product with the concatenated one-hots is a sum of W row lookups. There is no recurrence:
what is carried from one chunk to the next is layer 0's last W - 1 characters (as ids + 1,
0 meaning "before the text"), and nothing in the layers above.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charnn.nn.cells.base import CellBase
from charnn.nn.workspace import Workspace


class MLPCache(NamedTuple):
    h: np.ndarray  # (T+1, B, H) outputs, h[0] unused (zero)
    buffers: tuple


def _context_ids(ids_tm: np.ndarray, state0: np.ndarray) -> np.ndarray:
    """(T + W - 1, B) ids + 1, oldest first: the carried characters, then the chunk's (0 = none)."""
    history = np.rint(state0.T).astype(np.int64)  # (W-1, B), stored oldest first
    return np.concatenate([history, ids_tm.astype(np.int64) + 1])


class MLP(CellBase):
    name = "mlp"
    gates = 1
    input_weight, input_bias, recurrent_weight = "W_x", "b", None

    def param_shapes(self, fan_in: int, H: int) -> dict[str, tuple[int, ...]]:
        return {"W_x": (fan_in, H), "b": (H,)}

    def first_fan_in(self, vocab_size: int, context: int) -> int:
        return context * vocab_size

    def carried_width(self, H: int, layer: int, context: int) -> int:
        return context - 1 if layer == 0 else 0

    def state_width(self, H: int) -> int:
        return 0

    def input_part(self, p: dict, ids_tm: np.ndarray, state0: np.ndarray, out: np.ndarray):
        """The sum of W row lookups (one per position back); returns the carried last W - 1 characters."""
        W_x, b = p["W_x"], p["b"]
        T, V = ids_tm.shape[0], W_x.shape[0] // (state0.shape[1] + 1)
        ctx = _context_ids(ids_tm, state0)
        out[...] = b
        for j in range(W_x.shape[0] // V):  # block j: the character j steps back
            ids = ctx[state0.shape[1] - j : state0.shape[1] - j + T]
            block = np.concatenate([np.zeros((1, W_x.shape[1]), W_x.dtype), W_x[j * V : (j + 1) * V]])
            out += block[ids]  # id 0 (before the text) adds nothing
        return ctx[len(ctx) - state0.shape[1]:].T.astype(state0.dtype)

    def input_grads(self, dxa2: np.ndarray, ids_tm: np.ndarray, state0: np.ndarray, p: dict, ws: Workspace):
        W_x = p["W_x"]
        T, B = ids_tm.shape
        V = W_x.shape[0] // (state0.shape[1] + 1)
        ctx = _context_ids(ids_tm, state0)
        grad = np.zeros_like(W_x)
        for j in range(W_x.shape[0] // V):
            ids = ctx[state0.shape[1] - j : state0.shape[1] - j + T].reshape(-1)
            one_hot_t = np.zeros((V + 1, T * B), dxa2.dtype)
            one_hot_t[ids, np.arange(T * B)] = 1  # the sum of rows per id, as one GEMM
            grad[j * V : (j + 1) * V] = (one_hot_t @ dxa2)[1:]
        return grad

    def read_one(self, p: dict, table, char_id: int, state: np.ndarray):
        """Sampling, one character: (its input part, the carried characters after it)."""
        W_x = p["W_x"]
        V = W_x.shape[0] // (state.shape[-1] + 1)
        ctx = np.concatenate([np.rint(state).astype(np.int64), [char_id + 1]])  # oldest first
        xa = p["b"].copy()
        for j, c in enumerate(ctx[::-1]):  # j steps back
            if c > 0:
                xa += W_x[j * V + c - 1]
        return xa, ctx[1:].astype(state.dtype)

    def forward(self, xa: np.ndarray, state0: np.ndarray, p: dict, ws: Workspace):
        h = xa  # in place: the outputs are written over the input part
        h[0] = 0
        np.tanh(h[1:], out=h[1:])
        return h, state0.copy(), MLPCache(h, (h,))

    def backward(self, dh, cache: MLPCache, p: dict, ws: Workspace, dlast=None, trace=None):
        dh *= 1 - cache.h[1:] ** 2  # through tanh; nothing flows back in time
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
