"""Every kernel a run of one cell calls, called once on tiny arrays of the types the real calls
pass (float32 C-contiguous arrays, int64 ids, an int step): Numba compiles per type signature, so
these calls compile, or load from the cache, exactly what training and sampling then run."""

from __future__ import annotations

import numpy as np

from charnn.nn.fast import cell_kernels as K
from charnn.nn.fast import chunk_kernels as KC

T, B, H, V = 2, 2, 4, 3


def _arrays(*shapes):
    return [np.zeros(s, np.float32) for s in shapes]


def run(cell: str) -> None:
    ids = np.zeros((T, B), np.int64)
    {"lstm": _lstm, "gru": _gru, "rnn": _elman}[cell](ids)
    W, WT = _arrays((H, 3 * H), (3 * H, H))
    KC.transpose_into(W, WT)
    z, db = np.ones((B, V), np.float32), np.zeros(V, np.float32)
    KC.softmax_xent_rows(z, np.zeros(B, np.int64), np.zeros(B), np.float32(0.5), db)
    p, g, m, v = _arrays(8, 8, 8, 8)
    KC.adam_update(p, g, m, v, *(np.float32(x) for x in (1, 0, 1, 0.9, 0.1, 0.999, 0.001, 1, 1e-8, 1e-3)))
    sampling(cell)


def sampling(cell: str) -> None:
    """The kernels one-stream sampling runs: the cell's step and the draw."""
    if cell == "lstm":
        KC.lstm_cell_vec(*_arrays(4 * H, 4 * H, H, H))
    elif cell == "gru":
        KC.gru_cell_vec(*_arrays(3 * H, 3 * H, 3 * H, H))
    else:
        KC.elman_cell_vec(*_arrays(H, H, H))
    KC.choose_id(np.zeros(V, np.float32), 1.0, 0.5)


def _lstm(ids):
    ha, gates, c, tanh_c, h = _arrays((B, 4 * H), (T, B, 4 * H), (T + 1, B, H), (T, B, H), (T + 1, B, H))
    table, dh, dc, dh_out, da, dW, db = _arrays((V, 4 * H), (B, H), (B, H), (T, B, H), (T, B, 4 * H),
                                                (V, 4 * H), 4 * H)
    K.lstm_fwd_step(0, ha, gates, c, tanh_c, h)
    K.lstm_fwd_step_ids(0, ha, table, ids, gates, c, tanh_c, h)
    K.lstm_bwd_step(0, dh, dc, dh_out, gates, c, tanh_c, da)
    K.lstm_bwd_step_acc(0, dh, dc, dh_out, gates, c, tanh_c, da, ids, dW, db)


def _gru(ids):
    ha, b_h, xa, rz, n, ha_n, h = _arrays((B, 3 * H), 3 * H, (T, B, 3 * H), (T, B, 2 * H), (T, B, H), (T, B, H),
                                          (T + 1, B, H))
    table, dh, dhr, dh_out, dxa, dha, dW, db_x, db_hn = _arrays((V, 3 * H), (B, H), (B, H), (T, B, H),
                                                                (T, B, 3 * H), (T, B, 3 * H), (V, 3 * H), 3 * H, H)
    K.gru_fwd_step(0, ha, b_h, xa, rz, n, ha_n, h)
    K.gru_fwd_step_ids(0, ha, b_h, table, ids, rz, n, ha_n, h)
    K.gru_bwd_step(0, dh, dhr, dh_out, rz, n, ha_n, h, dxa, dha)
    K.gru_bwd_step_acc(0, dh, dhr, dh_out, rz, n, ha_n, h, dha, ids, dW, db_x, db_hn)


def _elman(ids):
    tmp, h, table, dprev, dh, dW, db = _arrays((B, H), (T + 1, B, H), (V, H), (B, H), (T, B, H), (V, H), H)
    K.elman_fwd_step(0, tmp, h)
    K.elman_fwd_step_ids(0, tmp, table, ids, h)
    K.elman_bwd_step(0, dprev, dh, h)
    K.elman_bwd_step_acc(0, dprev, dh, h, ids, dW, db)
    KC.elman_cell_vec(*_arrays(H, H, H))
