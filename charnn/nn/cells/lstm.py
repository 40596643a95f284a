"""The LSTM cell, gates i, f, g, o in PyTorch's order (checkpoints map one-to-one onto nn.LSTM).

    a_t = xa_t + h_{t-1} W_h               xa_t = x_t W_x + b, the input part
    i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g,         h_t = o * tanh(c_t)

The carried state is [h | c], shape (B, 2H). The forget gate's bias starts at 1.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charnn.nn.cells.base import CellBase, chrono_bias, column_scaled, sigmoid
from charnn.nn.workspace import Workspace


class LSTMCache(NamedTuple):
    gates: np.ndarray  # (T, B, 4H) activated i, f, g, o
    c: np.ndarray  # (T+1, B, H) cell states, c[0] the initial one
    tanh_c: np.ndarray  # (T, B, H)
    h: np.ndarray  # (T+1, B, H) outputs, h[0] the initial one
    buffers: tuple


def _gate_scales(H: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """sigmoid(a) = 0.5 tanh(a / 2) + 0.5: per column, the factor before and after one tanh and
    the shift after it, so a single tanh activates all four gates (g keeps a plain tanh)."""
    half, shift = np.full(4 * H, 0.5, dtype), np.full(4 * H, 0.5, dtype)
    half[2 * H : 3 * H], shift[2 * H : 3 * H] = 1.0, 0.0
    return half, shift


class LSTM(CellBase):
    name = "lstm"
    gates = 4
    input_weight, input_bias, recurrent_weight = "W_x", "b", "W_h"
    gate_names = ("i", "f", "g", "o")
    sigmoid_gates = ("i", "f", "o")  # g is the tanh candidate
    memory_gate = "f"  # c_t = f * c_{t-1} + ...: the product of forget gates is the carousel through c

    def param_shapes(self, fan_in: int, H: int) -> dict[str, tuple[int, ...]]:
        return {"W_x": (fan_in, 4 * H), "W_h": (H, 4 * H), "b": (4 * H,)}

    def init_biases(self, p: dict, H: int) -> None:
        p["b"][H : 2 * H] = 1.0  # remember by default: forget gate open

    def chrono_biases(self, p: dict, H: int, t_max: int, rng: np.random.Generator) -> None:
        b_f = chrono_bias(H, t_max, rng)
        p["b"][H : 2 * H] = b_f  # forget gate
        p["b"][:H] = -b_f  # input gate: what is held long is written rarely

    def state_width(self, H: int) -> int:
        return 2 * H

    def forward(self, xa_rows: np.ndarray, state0: np.ndarray, p: dict, ws: Workspace):
        xa = xa_rows[1:]  # row 0 is spare; the input part becomes the activated gates in place
        T, B, H4 = xa.shape
        H = H4 // 4
        dtype = xa.dtype
        h, c, tanh_c = ws.take((T + 1, B, H), dtype), ws.take((T + 1, B, H), dtype), ws.take((T, B, H), dtype)
        h[0], c[0] = state0[:, :H], state0[:, H:]
        # halve the i, f, o columns up front (of the input part for all steps at once, and of a
        # copy of W_h); then one tanh and one affine map per step activate all four gates
        half, shift = _gate_scales(H, dtype)
        gates = xa  # becomes the activated gates step by step
        gates *= half
        W_half = p["W_h"] * half
        ha, ig = np.empty((B, H4), dtype), np.empty((B, H), dtype)
        matmul, multiply, tanh = np.matmul, np.multiply, np.tanh
        for t in range(T):
            a = gates[t]
            matmul(h[t], W_half, out=ha)
            a += ha
            tanh(a, out=a)
            a *= half
            a += shift
            multiply(a[:, H : 2 * H], c[t], out=c[t + 1])  # f * c_{t-1}
            multiply(a[:, :H], a[:, 2 * H : 3 * H], out=ig)  # i * g
            c[t + 1] += ig
            tanh(c[t + 1], out=tanh_c[t])
            multiply(a[:, 3 * H :], tanh_c[t], out=h[t + 1])
        last = np.concatenate([h[-1], c[-1]], axis=1)
        return h, last, LSTMCache(gates, c, tanh_c, h, (xa_rows, c, tanh_c, h))

    def backward(self, dh_out, cache: LSTMCache, p: dict, ws: Workspace, dlast=None, trace=None):
        T, B, H = dh_out.shape
        dtype = dh_out.dtype
        gates, c, tanh_c = cache.gates, cache.c, cache.tanh_c
        da = ws.take(gates.shape, dtype)
        if dlast is None:
            dh, dc = np.zeros((B, H), dtype), np.zeros((B, H), dtype)
        else:
            dh, dc = dlast[:, :H].copy(), dlast[:, H:].copy()
        W_h_T = np.ascontiguousarray(p["W_h"].T)  # BLAS runs the small per-step products faster on it
        # the gate derivatives are formed step by step on (B, H) slices that stay in cache: over
        # whole (T, B, H) arrays up front the same arithmetic took a quarter of the backward pass
        s_prime = np.empty((B, 4 * H), dtype)  # gate * (1 - gate): sigmoid' of i, f, o (g's unused)
        u = np.empty((B, H), dtype)
        matmul, multiply, subtract = np.matmul, np.multiply, np.subtract
        if trace is not None:
            trace["dh"], trace["dc"] = np.empty_like(dh_out), np.empty_like(dh_out)
        for t in range(T - 1, -1, -1):
            gt, tc, a = gates[t], tanh_c[t], da[t]
            i, f, g, o = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H : 3 * H], gt[:, 3 * H :]
            dh += dh_out[t]  # total gradient on h_t
            multiply(tc, tc, out=u)
            subtract(1, u, out=u)
            u *= o
            u *= dh
            dc += u  # total gradient on c_t: dc_t += dh * o * tanh'(c_t)
            if trace is not None:
                trace["dh"][t], trace["dc"][t] = dh, dc
            subtract(1, gt, out=s_prime)
            s_prime *= gt
            multiply(dc, g, out=a[:, :H])  # da_i = dc * g * sigmoid'
            a[:, :H] *= s_prime[:, :H]
            multiply(dc, c[t], out=a[:, H : 2 * H])  # da_f = dc * c_{t-1} * sigmoid'
            a[:, H : 2 * H] *= s_prime[:, H : 2 * H]
            multiply(g, g, out=u)
            subtract(1, u, out=u)
            u *= i
            multiply(u, dc, out=a[:, 2 * H : 3 * H])  # da_g = dc * i * tanh'
            multiply(dh, tc, out=a[:, 3 * H :])  # da_o = dh * tanh(c_t) * sigmoid'
            a[:, 3 * H :] *= s_prime[:, 3 * H :]
            dc *= f  # to c_{t-1}
            matmul(a, W_h_T, out=dh)  # to h_{t-1}
        if trace is not None:
            trace["da"] = da
        ws.give(dh_out)  # only read: da is the dxa handed back
        dW_h = cache.h[:-1].reshape(T * B, H).T @ da.reshape(T * B, 4 * H)
        return da, {"W_h": dW_h}, np.concatenate([dh, dc], axis=1)

    def step(self, xa: np.ndarray, state: np.ndarray, p: dict):
        H = state.shape[-1] // 2
        a = xa + state[..., :H] @ p["W_h"]
        sig = lambda v: 0.5 * np.tanh(0.5 * v) + 0.5  # noqa: E731  the same sigmoid forward uses
        i, f, g, o = sig(a[..., :H]), sig(a[..., H : 2 * H]), np.tanh(a[..., 2 * H : 3 * H]), sig(a[..., 3 * H :])
        c = f * state[..., H:] + i * g
        h = o * np.tanh(c)
        return h, np.concatenate([h, c], axis=-1)

    def jacobian_product(self, M: np.ndarray, t: int, cache: LSTMCache, p: dict) -> np.ndarray:
        """On the state [h | c], J_t's blocks:
            dc_t/dh = diag(c_{t-1} f') W_f^T + diag(g i') W_i^T + diag(i g') W_g^T,  dc_t/dc = diag(f),
            dh_t/d. = diag(tanh(c_t) o') W_o^T [h only] + diag(o tanh'(c_t)) dc_t/d.
        """
        H = cache.h.shape[2]
        gates = cache.gates[t - 1]
        i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
        tanh_c = cache.tanh_c[t - 1]
        M_h, M_c = M[..., :H], M[..., H:]
        P = column_scaled(M_h, o * (1 - tanh_c**2)) + M_c  # what reaches c_t
        parts = [column_scaled(P, g * i * (1 - i)), column_scaled(P, cache.c[t - 1] * f * (1 - f)),
                 column_scaled(P, i * (1 - g * g)), column_scaled(M_h, tanh_c * o * (1 - o))]
        return np.concatenate([np.concatenate(parts, axis=2) @ p["W_h"].T, column_scaled(P, f)], axis=2)

    def unit_values(self, cache: LSTMCache) -> np.ndarray:
        return cache.tanh_c

    def gate_values(self, cache: LSTMCache) -> dict:
        H = cache.h.shape[2]
        return {name: cache.gates[..., k * H : (k + 1) * H] for k, name in enumerate(self.gate_names)}

    # ---- the specification ------------------------------------------------------------------------

    def reference_step(self, p, x, state):
        H = state.shape[1] // 2
        h, c = state[:, :H], state[:, H:]
        a = x @ p["W_x"] + h @ p["W_h"] + p["b"]
        i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sigmoid(a[:, 3 * H :])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        return h_new, np.concatenate([h_new, c_new], axis=1), (x, h, c, i, f, g, o, c_new)

    def reference_step_back(self, p, saved, dh, dstate, grads):
        x, h, c, i, f, g, o, c_new = saved
        H = h.shape[1]
        dh = dh + dstate[:, :H]  # total gradient on h_t
        dc = dstate[:, H:] + dh * o * (1 - np.tanh(c_new) ** 2)  # total gradient on c_t
        da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g**2),
                             dh * np.tanh(c_new) * o * (1 - o)], axis=1)
        grads["W_x"] += x.T @ da
        grads["W_h"] += h.T @ da
        grads["b"] += da.sum(axis=0)
        return da @ p["W_x"].T, np.concatenate([da @ p["W_h"].T, dc * f], axis=1)
