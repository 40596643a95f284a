"""The LSTM, GRU and Elman cells over a chunk on the fused kernels (float32): drop-ins for their
NumPy `forward` and `backward` (charnn/nn/cells), which remain the reference they are tested
against. They return the NumPy cells' own caches, so everything reading a cache works on them,
and keep the workspace rule of charnn/nn/cells/base.py.

Beside `forward(xa_rows, state0, p, ws)` each has `forward_ids(table, ids, state0, p, ws)` for
layer 0, reading its input part from table = W_in + b_in inside the kernel (no (T, B, kH) lookup
pass), and `backward(..., acc=(ids, dW_in, db))` adds layer 0's input gradients into dW_in and db
as it goes (no one-hot product, no row sum). A step's own product stays with NumPy's BLAS.
"""

from __future__ import annotations

import numpy as np

from charnn.nn.cells.elman import ElmanCache
from charnn.nn.cells.gru import GRUCache
from charnn.nn.cells.lstm import LSTMCache
from charnn.nn.fast import cell_kernels as K
from charnn.nn.fast.chunk_kernels import transpose_into
from charnn.nn.workspace import Workspace

F = np.float32


def transposed(W: np.ndarray, ws: Workspace) -> np.ndarray:
    """W.T as a contiguous array from the workspace (BLAS runs the small per-step products faster
    on it than on the transposed view); the caller gives it back."""
    WT = ws.take((W.shape[1], W.shape[0]), F)
    transpose_into(W, WT)
    return WT


class BackProduct:
    """dst (B, H) = src (B, kH) @ W^T, the per-step product of a backward pass. Up to B = 32 streams
    as (W @ src^T)^T through an (H, B) buffer, the same sums, which OpenBLAS runs faster at small B
    (LSTM H=512 B=32: 400 against 480 us a step) with no transposed copy of W; above, on W^T made
    once per chunk. The rule depends on the shapes alone, so a run stays reproducible."""

    def __init__(self, W: np.ndarray, B: int, ws: Workspace):
        self.W, self.ws = W, ws
        self.WT, self.dT = (None, ws.take((W.shape[0], B), F)) if B <= 32 else (transposed(W, ws), None)

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> None:
        if self.WT is not None:
            np.matmul(src, self.WT, out=dst)
        else:
            np.matmul(self.W, src.T, out=self.dT)
            np.copyto(dst, self.dT.T)

    def close(self) -> None:
        self.ws.give(self.WT, self.dT)


def recurrent_grad(h: np.ndarray, da: np.ndarray, ws: Workspace) -> np.ndarray:
    """sum_t h_{t-1}^T da_t, one GEMM over all T*B rows, into a workspace array."""
    T, B, H = da.shape[0], da.shape[1], h.shape[2]
    out = ws.take((H, da.shape[2]), F)
    np.matmul(h[:-1].reshape(T * B, H).T, da.reshape(T * B, -1), out=out)
    return out


class FastLSTM:
    def forward(self, xa_rows, state0, p, ws):
        gates = xa_rows[1:]  # the input part, becoming the activated gates in place
        h, c, tanh_c = self._run(gates, state0, p, ws, None, None)
        return h, np.concatenate([h[-1], c[-1]], axis=1), LSTMCache(gates, c, tanh_c, h, (xa_rows, c, tanh_c, h))

    def forward_ids(self, table, ids, state0, p, ws):
        T, B = ids.shape
        gates = ws.take((T, B, table.shape[1]), F)
        h, c, tanh_c = self._run(gates, state0, p, ws, table, ids)
        return h, np.concatenate([h[-1], c[-1]], axis=1), LSTMCache(gates, c, tanh_c, h, (gates, c, tanh_c, h))

    def _run(self, gates, state0, p, ws, table, ids):
        T, B, H4 = gates.shape
        H = H4 // 4
        h, c, tanh_c = ws.take((T + 1, B, H), F), ws.take((T + 1, B, H), F), ws.take((T, B, H), F)
        h[0], c[0] = state0[:, :H], state0[:, H:]
        W, ha, matmul = p["W_h"], np.empty((B, H4), F), np.matmul
        for t in range(T):
            matmul(h[t], W, out=ha)
            if table is None:
                K.lstm_fwd_step(t, ha, gates, c, tanh_c, h)
            else:
                K.lstm_fwd_step_ids(t, ha, table, ids, gates, c, tanh_c, h)
        return h, c, tanh_c

    def backward(self, dh_out, cache: LSTMCache, p, ws, dlast=None, acc=None):
        T, B, H = dh_out.shape
        gates, c, tanh_c = cache.gates, cache.c, cache.tanh_c
        da = ws.take(gates.shape, F)
        dh, dc = (np.zeros((B, H), F), np.zeros((B, H), F)) if dlast is None else \
            (dlast[:, :H].copy(), dlast[:, H:].copy())
        back = BackProduct(p["W_h"], B, ws)
        for t in range(T - 1, -1, -1):
            if acc is None:
                K.lstm_bwd_step(t, dh, dc, dh_out, gates, c, tanh_c, da)
            else:
                K.lstm_bwd_step_acc(t, dh, dc, dh_out, gates, c, tanh_c, da, *acc)
            back(da[t], dh)  # to h_{t-1}
        back.close()
        ws.give(dh_out)  # only read: da is the dxa handed back
        return da, {"W_h": recurrent_grad(cache.h, da, ws)}, np.concatenate([dh, dc], axis=1)


class FastGRU:
    def forward(self, xa_rows, state0, p, ws):
        h, rz, n, ha_n = self._run(xa_rows[1:], state0, p, ws, None, None)
        ws.give(xa_rows)  # backward does not need the input part
        return h, h[-1].copy(), GRUCache(rz, n, ha_n, h, (rz, n, ha_n, h))

    def forward_ids(self, table, ids, state0, p, ws):
        h, rz, n, ha_n = self._run(None, state0, p, ws, table, ids)
        return h, h[-1].copy(), GRUCache(rz, n, ha_n, h, (rz, n, ha_n, h))

    def _run(self, xa, state0, p, ws, table, ids):
        W, b_h = p["W_h"], p["b_h"]
        T, B = ids.shape if xa is None else xa.shape[:2]
        H = W.shape[0]
        h, rz = ws.take((T + 1, B, H), F), ws.take((T, B, 2 * H), F)
        n, ha_n = ws.take((T, B, H), F), ws.take((T, B, H), F)
        h[0] = state0
        ha, matmul = np.empty((B, 3 * H), F), np.matmul
        for t in range(T):
            matmul(h[t], W, out=ha)
            if table is None:
                K.gru_fwd_step(t, ha, b_h, xa, rz, n, ha_n, h)
            else:
                K.gru_fwd_step_ids(t, ha, b_h, table, ids, rz, n, ha_n, h)
        return h, rz, n, ha_n

    def backward(self, dh_out, cache: GRUCache, p, ws, dlast=None, acc=None):
        """With acc (layer 0) no dxa is formed: the returned dxa is None and b_h's gradient is
        [db_x's r and z blocks, the n block gathered apart] (b_x and b_h share dxa's r, z rows)."""
        T, B, H = dh_out.shape
        rz, n, ha_n, h = cache.rz, cache.n, cache.ha_n, cache.h
        dha = ws.take((T, B, 3 * H), F)
        dxa = ws.take((T, B, 3 * H), F) if acc is None else None
        dh = np.zeros((B, H), F) if dlast is None else dlast.copy()
        dhr, db_hn = np.zeros((B, H), F), np.zeros(H, F)
        back = BackProduct(p["W_h"], B, ws)
        for t in range(T - 1, -1, -1):
            if acc is None:
                K.gru_bwd_step(t, dh, dhr, dh_out, rz, n, ha_n, h, dxa, dha)
            else:
                K.gru_bwd_step_acc(t, dh, dhr, dh_out, rz, n, ha_n, h, dha, *acc, db_hn)
            back(dha[t], dhr)  # the path through the recurrent product
        back.close()
        db_h = dha.reshape(T * B, 3 * H).sum(axis=0) if acc is None else np.concatenate([acc[2][:2 * H], db_hn])
        grads = {"W_h": recurrent_grad(h, dha, ws), "b_h": db_h}
        ws.give(dha, dh_out)
        dh += dhr  # the total gradient on h[0]
        return dxa, grads, dh


class FastElman:
    def forward(self, xa_rows, state0, p, ws):
        """In place, as the NumPy cell: the states are written over the input part."""
        return self._run(xa_rows, state0, p, None, None)

    def forward_ids(self, table, ids, state0, p, ws):
        T, B = ids.shape
        return self._run(ws.take((T + 1, B, table.shape[1]), F), state0, p, table, ids)

    def _run(self, h, state0, p, table, ids):
        T, B = h.shape[0] - 1, h.shape[1]
        h[0] = state0
        W, tmp, matmul = p["W_hh"], np.empty((B, h.shape[2]), F), np.matmul
        for t in range(T):
            matmul(h[t], W, out=tmp)
            if table is None:
                K.elman_fwd_step(t, tmp, h)
            else:
                K.elman_fwd_step_ids(t, tmp, table, ids, h)
        return h, h[-1].copy(), ElmanCache(h, (h,))

    def backward(self, dh, cache: ElmanCache, p, ws, dlast=None, acc=None):
        """In place: dh becomes dxa, the pre-activation gradient (returned)."""
        T, B, H = dh.shape
        h = cache.h
        dprev = np.zeros((B, H), F) if dlast is None else dlast.copy()
        back = BackProduct(p["W_hh"], B, ws)
        for t in range(T - 1, -1, -1):
            if acc is None:
                K.elman_bwd_step(t, dprev, dh, h)
            else:
                K.elman_bwd_step_acc(t, dprev, dh, h, *acc)
            back(dh[t], dprev)  # to s_{t-1}
        back.close()
        return dh, {"W_hh": recurrent_grad(h, dh, ws)}, dprev


CELLS = {"lstm": FastLSTM(), "gru": FastGRU(), "rnn": FastElman()}
