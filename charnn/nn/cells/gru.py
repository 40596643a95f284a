"""The GRU cell, gates r, z, n in PyTorch's order (checkpoints map one-to-one onto nn.GRU).

    xa_t = x_t W_x + b_x,  ha_t = h_{t-1} W_h + b_h
    r, z = sigmoid(xa_r + ha_r, xa_z + ha_z),  n = tanh(xa_n + r * ha_n)
    h_t = (1 - z) * n + z * h_{t-1}
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charnn.nn.cells.base import CellBase, chrono_bias, column_scaled, sigmoid
from charnn.nn.workspace import Workspace


class GRUCache(NamedTuple):
    rz: np.ndarray  # (T, B, 2H) activated r and z side by side
    n: np.ndarray  # (T, B, H)
    ha_n: np.ndarray  # (T, B, H): h_{t-1} W_hn + b_hn, which r gates
    h: np.ndarray  # (T+1, B, H), h[0] the initial state
    buffers: tuple

    @property
    def r(self) -> np.ndarray:
        return self.rz[..., : self.n.shape[2]]

    @property
    def z(self) -> np.ndarray:
        return self.rz[..., self.n.shape[2] :]


class GRU(CellBase):
    name = "gru"
    gates = 3
    input_weight, input_bias, recurrent_weight = "W_x", "b_x", "W_h"
    gate_names = ("r", "z", "n")
    sigmoid_gates = ("r", "z")  # n is the tanh candidate
    memory_gate = "z"  # h_t = z * h_{t-1} + ...: the share of the old state kept

    def param_shapes(self, fan_in: int, H: int) -> dict[str, tuple[int, ...]]:
        return {"W_x": (fan_in, 3 * H), "W_h": (H, 3 * H), "b_x": (3 * H,), "b_h": (3 * H,)}

    def chrono_biases(self, p: dict, H: int, t_max: int, rng: np.random.Generator) -> None:
        p["b_x"][H : 2 * H] = chrono_bias(H, t_max, rng)  # update gate z: the share of h_{t-1} kept

    def forward(self, xa_rows: np.ndarray, state0: np.ndarray, p: dict, ws: Workspace):
        xa = xa_rows[1:]  # row 0 is spare
        T, B, H3 = xa.shape
        H = H3 // 3
        dtype = xa.dtype
        h, rz = ws.take((T + 1, B, H), dtype), ws.take((T, B, 2 * H), dtype)
        n, ha_n = ws.take((T, B, H), dtype), ws.take((T, B, H), dtype)
        h[0] = state0
        # sigmoid(a) = 0.5 tanh(a / 2) + 0.5, with the halving folded into copies of the r, z columns
        half = np.ones(H3, dtype)
        half[: 2 * H] = 0.5
        xa_rz = ws.take((T, B, 2 * H), dtype)
        np.multiply(xa[..., : 2 * H], dtype.type(0.5), out=xa_rz)
        W_half, b_half = p["W_h"] * half, p["b_h"] * half
        ha = np.empty((B, H3), dtype)
        for t in range(T):
            np.matmul(h[t], W_half, out=ha)
            ha += b_half
            a = rz[t]
            np.add(xa_rz[t], ha[:, : 2 * H], out=a)
            np.tanh(a, out=a)
            a *= 0.5
            a += 0.5
            ha_n[t] = ha[:, 2 * H :]
            np.multiply(a[:, :H], ha_n[t], out=n[t])
            n[t] += xa[t, :, 2 * H :]
            np.tanh(n[t], out=n[t])
            # h_t = n + z * (h_{t-1} - n)
            np.subtract(h[t], n[t], out=h[t + 1])
            h[t + 1] *= a[:, H:]
            h[t + 1] += n[t]
        ws.give(xa_rz, xa_rows)  # backward needs neither: the input part is not kept
        return h, h[-1].copy(), GRUCache(rz, n, ha_n, h, (rz, n, ha_n, h))

    def backward(self, dh_out, cache: GRUCache, p: dict, ws: Workspace, dlast=None, trace=None):
        T, B, H = dh_out.shape
        dtype = dh_out.dtype
        r, z, n, ha_n, h = cache.r, cache.z, cache.n, cache.ha_n, cache.h
        dxa, dha = ws.take((T, B, 3 * H), dtype), ws.take((T, B, 3 * H), dtype)
        dh = np.zeros((B, H), dtype) if dlast is None else dlast.copy()
        W_h_T = np.ascontiguousarray(p["W_h"].T)
        # gate derivatives step by step on (B, H) slices that stay in cache (see the LSTM)
        u, v = np.empty((B, H), dtype), np.empty((B, H), dtype)
        multiply, subtract = np.multiply, np.subtract
        if trace is not None:
            trace["dh"], trace["da"] = np.empty_like(dh_out), dha
        for t in range(T - 1, -1, -1):
            dh += dh_out[t]  # total gradient on h_t
            if trace is not None:
                trace["dh"][t] = dh
            x, a, rt, zt, nt = dxa[t], dha[t], r[t], z[t], n[t]
            dan, dar, daz = x[:, 2 * H :], x[:, :H], x[:, H : 2 * H]
            subtract(1, zt, out=v)  # 1 - z
            multiply(nt, nt, out=u)
            subtract(1, u, out=u)
            u *= v
            multiply(u, dh, out=dan)  # through n: dh * (1 - z) * tanh'
            subtract(h[t], nt, out=u)
            v *= zt
            u *= v
            multiply(u, dh, out=daz)  # through z: dh * (h_{t-1} - n) * sigmoid'
            subtract(1, rt, out=v)
            v *= rt
            v *= ha_n[t]
            multiply(dan, v, out=dar)  # through r, which scales ha_n: dan * ha_n * sigmoid'
            a[:, : 2 * H] = x[:, : 2 * H]
            multiply(dan, rt, out=a[:, 2 * H :])
            dh *= zt  # the direct path z * h_{t-1}
            np.matmul(a, W_h_T, out=u)
            dh += u
        grads = {"W_h": h[:-1].reshape(T * B, H).T @ dha.reshape(T * B, 3 * H), "b_h": dha.sum(axis=(0, 1))}
        if trace is None:
            ws.give(dha)
        ws.give(dh_out)  # only read: dxa is handed back
        return dxa, grads, dh

    def step(self, xa: np.ndarray, state: np.ndarray, p: dict):
        H = state.shape[-1]
        ha = state @ p["W_h"] + p["b_h"]
        sig = lambda v: 0.5 * np.tanh(0.5 * v) + 0.5  # noqa: E731  the same sigmoid forward uses
        r, z = sig(xa[..., :H] + ha[..., :H]), sig(xa[..., H : 2 * H] + ha[..., H : 2 * H])
        n = np.tanh(xa[..., 2 * H :] + r * ha[..., 2 * H :])
        h = n + z * (state - n)
        return h, h

    def jacobian_product(self, M: np.ndarray, t: int, cache: GRUCache, p: dict) -> np.ndarray:
        """J_t = diag(z) + diag(a_n ha_n r(1-r)) W_r^T + diag((h_{t-1} - n) z(1-z)) W_z^T + diag(a_n r) W_n^T,
        a_n = (1 - z)(1 - n^2)."""
        r, z, n, ha_n = cache.r[t - 1], cache.z[t - 1], cache.n[t - 1], cache.ha_n[t - 1]
        a_n = (1 - z) * (1 - n * n)
        parts = [a_n * ha_n * r * (1 - r), (cache.h[t - 1] - n) * z * (1 - z), a_n * r]
        return column_scaled(M, z) + np.concatenate([column_scaled(M, v) for v in parts], axis=2) @ p["W_h"].T

    def unit_values(self, cache: GRUCache) -> np.ndarray:
        return cache.h[1:]

    def gate_values(self, cache: GRUCache) -> dict:
        return {"r": cache.r, "z": cache.z, "n": cache.n}

    # ---- the specification ------------------------------------------------------------------------

    def reference_step(self, p, x, h):
        H = h.shape[1]
        xa, ha = x @ p["W_x"] + p["b_x"], h @ p["W_h"] + p["b_h"]
        r, z = sigmoid(xa[:, :H] + ha[:, :H]), sigmoid(xa[:, H : 2 * H] + ha[:, H : 2 * H])
        n = np.tanh(xa[:, 2 * H :] + r * ha[:, 2 * H :])
        h_new = (1 - z) * n + z * h
        return h_new, h_new, (x, h, ha, r, z, n)

    def reference_step_back(self, p, saved, dh, dstate, grads):
        x, h, ha, r, z, n = saved
        H = h.shape[1]
        dh = dh + dstate
        dan = dh * (1 - z) * (1 - n**2)  # through n's tanh
        dar = dan * ha[:, 2 * H :] * r * (1 - r)
        daz = dh * (h - n) * z * (1 - z)
        dxa = np.concatenate([dar, daz, dan], axis=1)
        dha = np.concatenate([dar, daz, dan * r], axis=1)
        grads["W_x"] += x.T @ dxa
        grads["b_x"] += dxa.sum(axis=0)
        grads["W_h"] += h.T @ dha
        grads["b_h"] += dha.sum(axis=0)
        return dxa @ p["W_x"].T, dh * z + dha @ p["W_h"].T
