"""The cells' time steps as fused float32 loops: one pass over memory per step for all B streams.

Each kernel does the element-wise work of one time step t of charnn's cells (charnn/nn/cells),
taking the whole time-major (T, B, .) arrays and t, so the caller makes no per-step views; the
matrix product of the step stays with NumPy (np.matmul(..., out=)). Shapes as in the cells: T
steps, B streams, H units, ids (T, B) int64. Recurrent products are of the raw W_rec (the NumPy
cells' halving of the sigmoid columns happens inside: sigmoid32 halves its argument).

  lstm_fwd_step(t, ha, gates, c, tanh_c, h)   ha (B, 4H) = h[t] W_h; gates[t] holds the input part
                                              on entry, the activated i, f, g, o on exit; writes
                                              c[t+1], tanh_c[t], h[t+1]
  lstm_fwd_step_ids(t, ha, table, ids, ...)   the same with the input part table[ids[t, b]]
                                              (table = W_x + b), read inside: layer 0 has no xa array
  lstm_bwd_step(t, dh, dc, dh_out, gates, c, tanh_c, da)
                                              dh (B, H) on entry da[t+1] W_h^T, dc (B, H) the cell
                                              gradient carried (in/out); writes da[t]
  lstm_bwd_step_acc(..., ids, dW_in, db)      and adds da[t, b] into dW_in[ids[t, b]] and db: layer
                                              0's input gradients without the one-hot product
  gru_fwd_step(t, ha, b_h, xa, rz, n, ha_n, h), gru_fwd_step_ids(t, ha, b_h, table, ids, ...)
  gru_bwd_step(t, dh, dhr, dh_out, rz, n, ha_n, h, dxa, dha)
                                              dh the direct-path gradient z * dh_total from t+1, dhr
                                              dha[t+1] W_h^T; the total gradient on h[t] is dh + dhr
  gru_bwd_step_acc(..., dha, ids, dW_in, db_x, db_hn)   layer 0: no dxa array at all
  elman_fwd_step(t, tmp, h), elman_fwd_step_ids(t, tmp, table, ids, h)   h[t+1] = tanh(xa + tmp)
  elman_bwd_step(t, dprev, dh, h), elman_bwd_step_acc(..., ids, dW_in, db)   dh[t] becomes da[t]

Pitfalls that each made a kernel 2-6x slower while it still looked right (the vectorisation test,
tests/test_kernels_asm.py, catches them): one (4H,) row indexed at j, H + j, ...: LLVM sees a symbolic
dependence distance and does not vectorise, so each gate block is passed as its own view; the same
row passed as input and output: the vector loop's runtime alias check fails and its scalar copy
runs; too many pointer streams in one loop ("too many memory checks"); a Python float literal in a
float32 expression, which promotes it to float64.
"""

from __future__ import annotations

import numpy as np

from charnn.nn.fast.jit import ONE, kernel, sigmoid32, tanh32

# ---- LSTM ----------------------------------------------------------------------------------


@kernel(inline=True)
def _lstm_fwd_row(xi, xf, xg, xo, hi, hf, hg, ho, gi, gf, gg, go, cp, cn, tc, hn):
    """One stream: x* the input part's gate blocks, h* those of h_{t-1} W_h; writes the gates g*,
    cn = c_t, tc = tanh(c_t), hn = h_t. x* may be the very views g* (in place)."""
    for j in range(cp.shape[0]):
        i = sigmoid32(xi[j] + hi[j])
        f = sigmoid32(xf[j] + hf[j])
        g = tanh32(xg[j] + hg[j])
        o = sigmoid32(xo[j] + ho[j])
        gi[j] = i
        gf[j] = f
        gg[j] = g
        go[j] = o
        cc = f * cp[j] + i * g
        cn[j] = cc
        tcc = tanh32(cc)
        tc[j] = tcc
        hn[j] = o * tcc


@kernel()
def lstm_fwd_step(t, ha, gates, c, tanh_c, h):
    B, H = ha.shape[0], ha.shape[1] // 4
    for b in range(B):
        gr, hr = gates[t, b], ha[b]
        gi, gf, gg, go = gr[:H], gr[H:2 * H], gr[2 * H:3 * H], gr[3 * H:]
        _lstm_fwd_row(gi, gf, gg, go, hr[:H], hr[H:2 * H], hr[2 * H:3 * H], hr[3 * H:], gi, gf, gg, go,
                      c[t, b], c[t + 1, b], tanh_c[t, b], h[t + 1, b])


@kernel()
def lstm_fwd_step_ids(t, ha, table, ids, gates, c, tanh_c, h):
    B, H = ha.shape[0], ha.shape[1] // 4
    for b in range(B):
        xr, gr, hr = table[ids[t, b]], gates[t, b], ha[b]
        _lstm_fwd_row(xr[:H], xr[H:2 * H], xr[2 * H:3 * H], xr[3 * H:], hr[:H], hr[H:2 * H], hr[2 * H:3 * H],
                      hr[3 * H:], gr[:H], gr[H:2 * H], gr[2 * H:3 * H], gr[3 * H:], c[t, b], c[t + 1, b],
                      tanh_c[t, b], h[t + 1, b])


@kernel(inline=True)
def _lstm_bwd_row(dhr, dcr, dor, gi, gf, gg, go, cp, tc, di, df, dg, do):
    for j in range(dhr.shape[0]):
        i = gi[j]
        f = gf[j]
        g = gg[j]
        o = go[j]
        dht = dhr[j] + dor[j]  # total gradient on h_t
        tcc = tc[j]
        dcc = dcr[j] + dht * o * (ONE - tcc * tcc)  # total gradient on c_t
        di[j] = dcc * g * (i * (ONE - i))
        df[j] = dcc * cp[j] * (f * (ONE - f))
        dg[j] = dcc * i * (ONE - g * g)
        do[j] = dht * tcc * (o * (ONE - o))
        dcr[j] = dcc * f  # to c_{t-1}


@kernel(inline=True)
def _lstm_bwd_b(t, b, dh, dc, dh_out, gates, c, tanh_c, da, H):
    gr, dar = gates[t, b], da[t, b]
    _lstm_bwd_row(dh[b], dc[b], dh_out[t, b], gr[:H], gr[H:2 * H], gr[2 * H:3 * H], gr[3 * H:], c[t, b],
                  tanh_c[t, b], dar[:H], dar[H:2 * H], dar[2 * H:3 * H], dar[3 * H:])


@kernel()
def lstm_bwd_step(t, dh, dc, dh_out, gates, c, tanh_c, da):
    B, H = dh.shape[0], dh.shape[1]
    for b in range(B):
        _lstm_bwd_b(t, b, dh, dc, dh_out, gates, c, tanh_c, da, H)


@kernel(inline=True)
def _acc_row(src, dst, db):
    for k in range(src.shape[0]):
        v = src[k]
        dst[k] += v
        db[k] += v


@kernel(inline=True)
def _add_row(src, dst):
    for k in range(src.shape[0]):
        dst[k] += src[k]


@kernel()
def lstm_bwd_step_acc(t, dh, dc, dh_out, gates, c, tanh_c, da, ids, dW_in, db):
    B, H = dh.shape[0], dh.shape[1]
    for b in range(B):
        _lstm_bwd_b(t, b, dh, dc, dh_out, gates, c, tanh_c, da, H)
        _acc_row(da[t, b], dW_in[ids[t, b]], db)


# ---- GRU -----------------------------------------------------------------------------------


@kernel(inline=True)
def _gru_fwd_row(xr_, xz, xn, har, haz, han, bhr, bhz, bhn, rr, zz, nr, hanr, hp, hn):
    for j in range(hp.shape[0]):
        a_r = har[j] + bhr[j]
        a_z = haz[j] + bhz[j]
        a_n = han[j] + bhn[j]
        r = sigmoid32(xr_[j] + a_r)
        z = sigmoid32(xz[j] + a_z)
        rr[j] = r
        zz[j] = z
        hanr[j] = a_n
        nn = tanh32(xn[j] + r * a_n)
        nr[j] = nn
        hn[j] = nn + z * (hp[j] - nn)


@kernel(inline=True)
def _gru_fwd_b(t, b, xr, ha, b_h, rz, n, ha_n, h, H):
    hr, rzr = ha[b], rz[t, b]
    _gru_fwd_row(xr[:H], xr[H:2 * H], xr[2 * H:], hr[:H], hr[H:2 * H], hr[2 * H:], b_h[:H], b_h[H:2 * H],
                 b_h[2 * H:], rzr[:H], rzr[H:], n[t, b], ha_n[t, b], h[t, b], h[t + 1, b])


@kernel()
def gru_fwd_step(t, ha, b_h, xa, rz, n, ha_n, h):
    B, H = ha.shape[0], ha.shape[1] // 3
    for b in range(B):
        _gru_fwd_b(t, b, xa[t, b], ha, b_h, rz, n, ha_n, h, H)


@kernel()
def gru_fwd_step_ids(t, ha, b_h, table, ids, rz, n, ha_n, h):
    B, H = ha.shape[0], ha.shape[1] // 3
    for b in range(B):
        _gru_fwd_b(t, b, table[ids[t, b]], ha, b_h, rz, n, ha_n, h, H)


@kernel(inline=True)
def _gru_bwd_row(dhr, dhrr, dor, rr, zz, nr, hanr, hp, dxr, dxz, dxn, dhar, dhaz, dhan):
    for j in range(dhr.shape[0]):
        dht = dhr[j] + dhrr[j] + dor[j]  # total gradient on h_t
        r = rr[j]
        z = zz[j]
        nn = nr[j]
        v = ONE - z
        dan = dht * ((ONE - nn * nn) * v)  # through n
        daz = dht * ((hp[j] - nn) * (v * z))  # through z
        dar = dan * ((ONE - r) * r * hanr[j])  # through r, which scales ha_n
        dxr[j] = dar
        dxz[j] = daz
        dxn[j] = dan
        dhar[j] = dar
        dhaz[j] = daz
        dhan[j] = dan * r
        dhr[j] = dht * z  # the direct path z * h_{t-1}


@kernel()
def gru_bwd_step(t, dh, dhr, dh_out, rz, n, ha_n, h, dxa, dha):
    B, H = dh.shape[0], dh.shape[1]
    for b in range(B):
        rzr, dxr, dhar = rz[t, b], dxa[t, b], dha[t, b]
        _gru_bwd_row(dh[b], dhr[b], dh_out[t, b], rzr[:H], rzr[H:], n[t, b], ha_n[t, b], h[t, b],
                     dxr[:H], dxr[H:2 * H], dxr[2 * H:], dhar[:H], dhar[H:2 * H], dhar[2 * H:])


@kernel()
def gru_bwd_step_acc(t, dh, dhr, dh_out, rz, n, ha_n, h, dha, ids, dW_in, db_x, db_hn):
    """Layer 0: each stream's dxa row goes to a scratch row (in L1) and from there into
    dW_in[ids[t, b]] and db_x; db_hn gathers the n block of b_h's gradient (its r and z blocks
    equal db_x's). One loop doing all of it has 18 pointer streams, too many to vectorise."""
    B, H = dh.shape[0], dh.shape[1]
    sx = np.empty(3 * H, np.float32)
    for b in range(B):
        rzr, dhar = rz[t, b], dha[t, b]
        _gru_bwd_row(dh[b], dhr[b], dh_out[t, b], rzr[:H], rzr[H:], n[t, b], ha_n[t, b], h[t, b],
                     sx[:H], sx[H:2 * H], sx[2 * H:], dhar[:H], dhar[H:2 * H], dhar[2 * H:])
        _acc_row(sx, dW_in[ids[t, b]], db_x)
        _add_row(dhar[2 * H:], db_hn)


# ---- Elman ---------------------------------------------------------------------------------


@kernel(inline=True)
def _tanh_sum_row(x, y, out):
    for j in range(out.shape[0]):
        out[j] = tanh32(x[j] + y[j])


@kernel()
def elman_fwd_step(t, tmp, h):
    """h (T+1, B, H) holds the input part in rows 1..T, as the NumPy cell's; in place."""
    for b in range(tmp.shape[0]):
        st = h[t + 1, b]
        _tanh_sum_row(st, tmp[b], st)


@kernel()
def elman_fwd_step_ids(t, tmp, table, ids, h):
    for b in range(tmp.shape[0]):
        _tanh_sum_row(table[ids[t, b]], tmp[b], h[t + 1, b])


@kernel(inline=True)
def _elman_bwd_row(d, dp, s):
    for j in range(d.shape[0]):
        sj = s[j]
        d[j] = (d[j] + dp[j]) * (ONE - sj * sj)


@kernel()
def elman_bwd_step(t, dprev, dh, h):
    for b in range(dprev.shape[0]):
        _elman_bwd_row(dh[t, b], dprev[b], h[t + 1, b])


@kernel()
def elman_bwd_step_acc(t, dprev, dh, h, ids, dW_in, db):
    for b in range(dprev.shape[0]):
        d = dh[t, b]
        _elman_bwd_row(d, dprev[b], h[t + 1, b])
        _acc_row(d, dW_in[ids[t, b]], db)
