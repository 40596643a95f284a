"""Whole-chunk helpers of the fast path (the head's loss, the update, a transpose) and the
one-stream steps that sampling runs, all float32.

  transpose_into(src, dst)                dst = src.T, in 32 x 32 tiles
  softmax_xent_rows(z, targets, tl, inv_n, db) -> loss
                                          the head's loss and its gradient in one pass
  adam_update(p, g, m, v, scale, l2, keep, b1, omb1, b2, omb2, corr2, eps, step_size)
                                          clip factor, weight decay and Adam in one pass, rounding
                                          exactly as charnn.nn.optim's NumPy sequence
  lstm_cell_vec(xa, ha, c, h), gru_cell_vec(xa, ha, b_h, h), elman_cell_vec(xa, ha, h)
                                          one stream, one step, the state (1-D) updated in place
"""

from __future__ import annotations

import numpy as np

from charnn.nn.fast.jit import ONE, ZERO, kernel, sigmoid32, tanh32


@kernel()
def transpose_into(src, dst):
    """dst[j, i] = src[i, j], tile by tile, each tile written row by row. Equals
    np.ascontiguousarray(src.T), which takes 2-7 ms on a 512 x 2048 float32 matrix against ~0.8 ms
    here: its strided reads of rows 8 KiB apart fall into the same L1 sets (4 KiB aliasing)."""
    m, n = src.shape
    for i0 in range(0, m, 32):
        i1 = min(i0 + 32, m)
        for j0 in range(0, n, 32):
            for j in range(j0, min(j0 + 32, n)):
                d = dst[j]
                for i in range(i0, i1):
                    d[i] = src[i, j]


@kernel()
def softmax_xent_rows(z, targets, tl, inv_n, db):
    """The head's loss and gradient, in place on z (N, V). On entry z = exp(logits - shift) (NumPy's
    vectorised exp; a compiled exp would be a scalar call) and tl (N,) float64 the target logits less
    the same shift (taken before the exp, so a vanishing probability still gives a finite loss). On
    exit z = dlogits = (softmax - onehot) * inv_n and db (V,) their column sums, the gradient of b_y.
    Returns the mean cross-entropy. Equals softmax_cross_entropy_rows and the head's backward in
    charnn.nn.model, in one pass over z instead of six."""
    N, V = z.shape
    loss = 0.0
    for k in range(V):
        db[k] = ZERO
    for r in range(N):
        row = z[r]
        s = ZERO
        for k in range(V):
            s += row[k]
        loss += np.log(np.float64(s)) - tl[r]
        w = inv_n / s
        for k in range(V):
            d = row[k] * w
            row[k] = d
            db[k] += d
        tgt = targets[r]
        row[tgt] -= inv_n
        db[tgt] -= inv_n
    return loss / N


@kernel(exact=True)
def adam_update(p, g, m, v, scale, l2, keep, b1, omb1, b2, omb2, corr2, eps, step_size):
    """One Adam step over flat float32 arrays, the scalars float32. Equals, rounding for rounding
    (no fast-math: no fused multiply-adds), clip_gradients' g *= scale (1 when not clipped),
    apply_update's coupled decay g += l2 * p (adam; 0 for none), then _adam with AdamW's
    p *= keep (1 for none), in one pass over memory instead of about ten:
        m = m b1 + (1 - b1) g,  v = v b2 + ((1 - b2) g) g,  p = p keep - (step_size m) / (sqrt(v) corr2 + eps)
    with corr2 = 1 / sqrt(1 - b2^t) and step_size = lr / (1 - b1^t)."""
    for k in range(p.size):
        gk = g[k] * scale
        if l2 != ZERO:
            gk = gk + l2 * p[k]
        mk = m[k] * b1 + omb1 * gk
        vk = v[k] * b2 + (omb2 * gk) * gk
        m[k] = mk
        v[k] = vk
        pk = p[k] * keep if keep != ONE else p[k]
        p[k] = pk - (step_size * mk) / (np.sqrt(vk) * corr2 + eps)


# ---- one stream: sampling ------------------------------------------------------------------


@kernel()
def lstm_cell_vec(xa, ha, c, h):
    """xa, ha (4H): the input part and h_{t-1} W_h; c, h (H) updated in place. Each gate block is
    its own view (indexing one row at j, H + j, ... keeps LLVM from vectorising)."""
    H = h.shape[0]
    xi, xf, xg, xo = xa[:H], xa[H:2 * H], xa[2 * H:3 * H], xa[3 * H:]
    hi, hf, hg, ho = ha[:H], ha[H:2 * H], ha[2 * H:3 * H], ha[3 * H:]
    for j in range(H):
        i = sigmoid32(xi[j] + hi[j])
        f = sigmoid32(xf[j] + hf[j])
        g = tanh32(xg[j] + hg[j])
        o = sigmoid32(xo[j] + ho[j])
        cc = f * c[j] + i * g
        c[j] = cc
        h[j] = o * tanh32(cc)


@kernel()
def gru_cell_vec(xa, ha, b_h, h):
    """xa, ha (3H): the input part and h_{t-1} W_h (without b_h); h (H) updated in place."""
    H = h.shape[0]
    xr, xz, xn = xa[:H], xa[H:2 * H], xa[2 * H:]
    hr, hz, hn = ha[:H], ha[H:2 * H], ha[2 * H:]
    br, bz, bn = b_h[:H], b_h[H:2 * H], b_h[2 * H:]
    for j in range(H):
        a_n = hn[j] + bn[j]
        r = sigmoid32(xr[j] + (hr[j] + br[j]))
        z = sigmoid32(xz[j] + (hz[j] + bz[j]))
        nn = tanh32(xn[j] + r * a_n)
        h[j] = nn + z * (h[j] - nn)


@kernel()
def elman_cell_vec(xa, ha, h):
    for j in range(h.shape[0]):
        h[j] = tanh32(xa[j] + ha[j])


@kernel(exact=True)
def choose_id(logits, temperature, u):
    """charnn.nn.sampling.choose without top-k, top-p or greedy, given its uniform draw u: the id
    where u * sum(p) falls in cumsum(p) (searchsorted side="right"), p = exp(z - max z),
    z = float64(logits) / temperature, clipped to V - 1. The same float64 steps in one pass (libm's
    exp, where NumPy has its own: a u within their last-bit difference of a boundary may differ)."""
    V = logits.shape[0]
    z = np.empty(V)
    zmax = -np.inf
    for k in range(V):
        z[k] = np.float64(logits[k]) / temperature
        zmax = max(zmax, z[k])
    total = 0.0
    for k in range(V):
        total += np.exp(z[k] - zmax)
        z[k] = total  # the cumulative sum
    target = u * total
    for k in range(V):
        if z[k] > target:
            return k
    return V - 1
