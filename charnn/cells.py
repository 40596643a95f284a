"""Gated recurrent cells over T steps: LSTM and GRU, forward and exact backward.

Row vectors, time-major (T, B, .) arrays; the input part of every gate is precomputed for
all steps at once (one GEMM or row lookup), so each step does one fused (B, H) x (H, kH)
matmul for all its gates. Gate order matches PyTorch's nn.LSTM / nn.GRU, so checkpoints
map one-to-one onto theirs.

LSTM, gates i, f, g, o (xa = x W_x + b, a_t = xa_t + h_{t-1} W_h):
    i, f, o = sigmoid(a_i, a_f, a_o),  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g,         h_t = o * tanh(c_t)
GRU, gates r, z, n (xa = x W_x + b_x, ha = h_{t-1} W_h + b_h):
    r, z = sigmoid(xa_r + ha_r, xa_z + ha_z),  n = tanh(xa_n + r * ha_n)
    h_t = (1 - z) * n + z * h_{t-1}
The carried state of an LSTM layer is [h | c], shape (B, 2H); of a GRU layer, h (B, H).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charnn.workspace import scratch


class LSTMCache(NamedTuple):
    gates: np.ndarray  # (T, B, 4H) activated i, f, g, o
    c: np.ndarray  # (T+1, B, H) cell states, c[0] the initial one
    tanh_c: np.ndarray  # (T, B, H)
    h: np.ndarray  # (T+1, B, H) outputs, h[0] the initial one


def lstm_layer_forward(
    xa: np.ndarray, state0: np.ndarray, W_h: np.ndarray, *, overwrite_input: bool = False
) -> tuple[np.ndarray, np.ndarray, LSTMCache]:
    """xa: (T, B, 4H) input part of the gates; state0: (B, 2H) = [h0 | c0].

    Returns (h of shape (T+1, B, H) with h[0] = h0, last state [h_T | c_T], cache).
    With overwrite_input, xa's memory becomes the cache's gates (saves a copy of its size).
    """
    T, B, H4 = xa.shape
    H = H4 // 4
    dtype = xa.dtype
    h, c = scratch((T + 1, B, H), dtype), scratch((T + 1, B, H), dtype)
    tanh_c = scratch((T, B, H), dtype)
    h[0], c[0] = state0[:, :H], state0[:, H:]
    # sigmoid(a) = 0.5 tanh(a / 2) + 0.5: halve the i, f, o columns up front (in the input part
    # for all steps at once, and in a copy of W_h), then one tanh and one affine map per step
    # activate all four gates together
    half = np.full(H4, 0.5, dtype)
    half[2 * H : 3 * H] = 1.0
    shift = np.full(H4, 0.5, dtype)
    shift[2 * H : 3 * H] = 0.0
    gates = xa if overwrite_input else scratch(xa.shape, dtype)  # becomes the activated gates step by step
    np.multiply(xa, half, out=gates)
    W_half = W_h * half
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
    return h, last, LSTMCache(gates, c, tanh_c, h)


def lstm_layer_backward(
    dh_out: np.ndarray,
    cache: LSTMCache,
    W_h: np.ndarray,
    dstate_last: np.ndarray | None = None,
    trace: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dh_out: (T, B, H) gradient reaching h[1:] from outside. Returns (dxa, dW_h, dstate0).

    With a `trace` dict, also records the total gradients on every h_t and c_t ("dh", "dc").
    """
    T, B, H = dh_out.shape
    dtype = dh_out.dtype
    gates, c, tanh_c = cache.gates, cache.c, cache.tanh_c
    da = scratch(gates.shape, dtype)
    if dstate_last is None:
        dh, dc = np.zeros((B, H), dtype), np.zeros((B, H), dtype)
    else:
        dh, dc = dstate_last[:, :H].copy(), dstate_last[:, H:].copy()
    W_h_T = np.ascontiguousarray(W_h.T)  # BLAS runs the small per-step products faster on it
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
    dW_h = cache.h[:-1].reshape(T * B, H).T @ da.reshape(T * B, 4 * H)
    return da, dW_h, np.concatenate([dh, dc], axis=1)


class GRUCache(NamedTuple):
    r: np.ndarray  # (T, B, H)
    z: np.ndarray
    n: np.ndarray
    ha_n: np.ndarray  # (T, B, H): h_{t-1} W_hn + b_hn, which r gates
    h: np.ndarray  # (T+1, B, H), h[0] the initial state


def gru_layer_forward(
    xa: np.ndarray, state0: np.ndarray, W_h: np.ndarray, b_h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, GRUCache]:
    """xa: (T, B, 3H) = x W_x + b_x; state0: (B, H). Returns (h (T+1, B, H), h_T, cache)."""
    T, B, H3 = xa.shape
    H = H3 // 3
    dtype = xa.dtype
    h = scratch((T + 1, B, H), dtype)
    rz = scratch((T, B, 2 * H), dtype)  # r and z side by side, activated together
    n, ha_n = scratch((T, B, H), dtype), scratch((T, B, H), dtype)
    h[0] = state0
    # sigmoid(a) = 0.5 tanh(a / 2) + 0.5, with the halving folded into copies of the r, z columns
    half = np.ones(H3, dtype)
    half[: 2 * H] = 0.5
    xa_rz = scratch((T, B, 2 * H), dtype)
    np.multiply(xa[..., : 2 * H], dtype.type(0.5), out=xa_rz)
    W_half, b_half = W_h * half, b_h * half
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
    return h, h[-1].copy(), GRUCache(rz[..., :H], rz[..., H:], n, ha_n, h)


def gru_layer_backward(
    dh_out: np.ndarray,
    cache: GRUCache,
    W_h: np.ndarray,
    dstate_last: np.ndarray | None = None,
    trace: dict | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """dh_out: (T, B, H) from outside. Returns (dxa (T, B, 3H), dW_h, db_h, dstate0).

    With a `trace` dict, also records the total gradient on every h_t ("dh") and the
    gradient of the recurrent part h_{t-1} W_h + b_h ("dha").
    """
    T, B, H = dh_out.shape
    dtype = dh_out.dtype
    r, z, n, ha_n, h = cache
    dxa, dha = scratch((T, B, 3 * H), dtype), scratch((T, B, 3 * H), dtype)
    dh = np.zeros((B, H), dtype) if dstate_last is None else dstate_last.copy()
    W_h_T = np.ascontiguousarray(W_h.T)
    # gate derivatives step by step on (B, H) slices that stay in cache (see the LSTM)
    u, v = np.empty((B, H), dtype), np.empty((B, H), dtype)
    multiply, subtract = np.multiply, np.subtract
    if trace is not None:
        trace["dh"], trace["dha"] = np.empty_like(dh_out), dha
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
    dW_h = h[:-1].reshape(T * B, H).T @ dha.reshape(T * B, 3 * H)
    return dxa, dW_h, dha.sum(axis=(0, 1)), dh
