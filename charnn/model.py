"""The recurrent language model: parameters, forward over a chunk, exact backward through time.

The cell is the Elman network (`rnn`, below) or a gated one (`lstm`, `gru`: see cells.py);
everything else (input lookup, layers, dropout, head, loss) is shared.

Letters: B streams, T steps, H hidden units, V characters, L layers. Row vectors; for each
layer l and step t:

    s_t      = tanh(x_t W_xh + s_{t-1} W_hh + b_h)   x_t: one-hot char (l = 0) or layer l-1's state
    logits_t = s_t W_hy + b_y,   p_t = softmax(logits_t)
    loss     = mean over the B*T predictions of -ln p_t[target_t]

Parameters, gradients and optimizer state are plain dicts of arrays with the same keys.
Internally everything is time-major, (T, B, H), so step t reads one contiguous (B, H) block
and every weight gradient is one GEMM over all T*B rows.

Speed notes (float32, measured with benchmarks/bench_train.py): the large per-chunk arrays
come from a small reuse pool (charnn/workspace.py) instead of fresh page-faulting allocations; the
layer-0 input part is gathered straight into the state array with np.take(mode="wrap")
(mode="raise" buffers the whole output); backward multiplies by a contiguous copy of W^T
rather than a transposed view, which OpenBLAS runs faster for the small per-step products;
and the softmax shifts by one shared maximum when that is safe (see _softmax_cross_entropy_rows).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charnn import cells, workspace
from charnn.errors import CharnnError

Params = dict[str, np.ndarray]

INITS = ("normal", "uniform", "xavier", "orthogonal")
CELLS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # blocks of H columns in the input and recurrent matrices
# per cell: the input matrix, the bias added to the input part, the recurrent matrix
PARAM_NAMES = {"rnn": ("W_xh", "b_h", "W_hh"), "lstm": ("W_x", "b", "W_h"), "gru": ("W_x", "b_x", "W_h")}


def param_shapes(
    vocab_size: int, hidden_size: int, num_layers: int, cell: str = "rnn"
) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter; the names are the checkpoint keys.

    rnn:  rnn.{l}.W_xh (in, H), W_hh (H, H), b_h (H)
    lstm: rnn.{l}.W_x (in, 4H), W_h (H, 4H), b (4H)            gates i, f, g, o
    gru:  rnn.{l}.W_x (in, 3H), W_h (H, 3H), b_x (3H), b_h (3H)  gates r, z, n
    and head.W_hy (H, V), head.b_y (V), with in = V for layer 0 and H above.
    """
    if cell not in CELLS:
        raise CharnnError(f"unknown cell {cell!r}; choose one of {', '.join(CELLS)}")
    if vocab_size < 1:
        raise CharnnError("vocabulary size is 0: the model needs at least one character")
    if hidden_size < 1:
        raise CharnnError(f"hidden_size must be >= 1 (got {hidden_size})")
    if num_layers < 1:
        raise CharnnError(f"num_layers must be >= 1 (got {num_layers})")
    shapes: dict[str, tuple[int, ...]] = {}
    W_in, b_in, W_rec = PARAM_NAMES[cell]
    width = GATES[cell] * hidden_size
    for layer in range(num_layers):
        fan_in = vocab_size if layer == 0 else hidden_size
        shapes[f"rnn.{layer}.{W_in}"] = (fan_in, width)
        shapes[f"rnn.{layer}.{W_rec}"] = (hidden_size, width)
        shapes[f"rnn.{layer}.{b_in}"] = (width,)
        if cell == "gru":
            shapes[f"rnn.{layer}.b_h"] = (width,)
    shapes["head.W_hy"] = (hidden_size, vocab_size)
    shapes["head.b_y"] = (vocab_size,)
    return shapes


def _orthogonal(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random (semi-)orthogonal matrix: QR of a Gaussian, signs fixed so Q is uniformly drawn."""
    a = rng.standard_normal((max(shape), min(shape)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if shape[0] >= shape[1] else q.T


def init_params(
    vocab_size: int,
    hidden_size: int,
    num_layers: int = 1,
    *,
    init: str = "uniform",
    scale: float = 0.08,
    rng: np.random.Generator,
    dtype=np.float32,
    cell: str = "rnn",
) -> Params:
    """Fresh parameters; biases start at zero, except the LSTM's forget gate at 1.

    normal: N(0, scale^2) (scale 1 is the classic way to make gradients explode);
    uniform: U(-scale, scale) (char-rnn's 0.08); xavier: U(+-sqrt(6 / (fan_in + fan_out)))
    per gate block; orthogonal: each gate block of the recurrent matrix orthogonal, the
    other matrices xavier.
    """
    if init not in INITS:
        raise CharnnError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    params: Params = {}
    W_rec = PARAM_NAMES[cell][2]
    gates = GATES[cell]
    for name, shape in param_shapes(vocab_size, hidden_size, num_layers, cell).items():
        block = (shape[0], shape[-1] // gates) if name.startswith("rnn.") else shape
        if len(shape) == 1:
            w = np.zeros(shape)
            if cell == "lstm":
                w[hidden_size : 2 * hidden_size] = 1.0  # remember by default: forget gate open
        elif init == "normal":
            w = rng.normal(0.0, scale, shape)
        elif init == "uniform":
            w = rng.uniform(-scale, scale, shape)
        elif init == "orthogonal" and name.endswith("." + W_rec):
            w = np.concatenate([_orthogonal(block, rng) for _ in range(shape[1] // block[1])], axis=1)
        else:
            bound = np.sqrt(6.0 / (block[0] + block[1]))
            w = rng.uniform(-bound, bound, shape)
        params[name] = np.ascontiguousarray(w, dtype=dtype)
    return params


def cell_of(params: Params) -> str:
    """Which cell a parameter dict belongs to, from its names."""
    if "rnn.0.W_hh" in params:
        return "rnn"
    return "gru" if "rnn.0.b_x" in params else "lstm"


def num_layers_of(params: Params) -> int:
    return sum(1 for name in params if name.endswith((".W_hh", ".W_h")))


def state_width(params: Params) -> int:
    """Width of one layer's carried state: H, or 2H for the LSTM's [h | c]."""
    H = params["head.W_hy"].shape[0]
    return 2 * H if cell_of(params) == "lstm" else H


def zero_state(params: Params, batch_size: int) -> list[np.ndarray]:
    """The initial carried state: one (B, H) zero array per layer ((B, 2H) for the LSTM)."""
    dtype = params["head.W_hy"].dtype
    return [np.zeros((batch_size, state_width(params)), dtype) for _ in range(num_layers_of(params))]


# ---- reusable scratch memory ---------------------------------------------------------
#
# A training step touches several arrays of T*B*H floats (32 MiB each at H=1024, B=128, T=64);
# they come from the reuse pool in charnn/workspace.py, which says when one may be reused.
_scratch = workspace.scratch


def release_workspace() -> None:
    """Drop the pooled scratch arrays (memory is returned once no cache refers to them)."""
    workspace.release()


# ---- one recurrent layer over T steps -------------------------------------------------


def _recur(S: np.ndarray, W_hh: np.ndarray) -> None:
    """In place: S[0] holds h0 and S[1:] the input part xw; afterwards S[t+1] = tanh(xw[t] + S[t] W_hh)."""
    T = S.shape[0] - 1
    tmp = _scratch(S.shape[1:], S.dtype)
    matmul, add, tanh = np.matmul, np.add, np.tanh
    prev = S[0]
    for t in range(1, T + 1):
        st = S[t]
        matmul(prev, W_hh, out=tmp)
        add(tmp, st, out=st)
        tanh(st, out=st)
        prev = st


def rnn_layer_forward(xw: np.ndarray, h0: np.ndarray, W_hh: np.ndarray) -> np.ndarray:
    """States of one layer. xw: (T, B, H) input part x_t W_xh + b_h; h0: (B, H).

    Returns S of shape (T+1, B, H) with S[0] = h0 and S[t+1] = tanh(xw[t] + S[t] W_hh).
    """
    T = xw.shape[0]
    S = np.empty((T + 1,) + h0.shape, dtype=xw.dtype)
    S[0] = h0
    S[1:] = xw
    _recur(S, W_hh)
    return S


def _layer_backward_inplace(
    d: np.ndarray, S: np.ndarray, W_hh: np.ndarray, dh_last: np.ndarray | None
) -> np.ndarray:
    """Backprop through one layer's T steps, in place: d holds dS on entry and dxw on return.

    Returns dh0 (a fresh (B, H) array). S is only read.
    """
    T, B, H = d.shape
    # backprop through tanh needs 1 - s^2 at every step: one vectorised pass up front
    dtanh = _scratch(d.shape, d.dtype)
    np.multiply(S[1:], S[1:], out=dtanh)
    np.subtract(1, dtanh, out=dtanh)
    # a contiguous copy of W_hh^T: BLAS runs the T small products clearly faster on it
    # than on the transposed view (measured 1.1x-1.5x)
    W_hh_T = np.ascontiguousarray(W_hh.T)
    dh = np.empty((B, H), d.dtype)
    matmul, add, multiply = np.matmul, np.add, np.multiply
    t = T - 1
    dpre = d[t]
    if dh_last is not None:
        add(dpre, dh_last, out=dpre)
    multiply(dpre, dtanh[t], out=dpre)
    matmul(dpre, W_hh_T, out=dh)
    for t in range(T - 2, -1, -1):
        dpre = d[t]
        add(dpre, dh, out=dpre)  # total gradient on s_t: from outside + from step t+1
        multiply(dpre, dtanh[t], out=dpre)  # through tanh
        matmul(dpre, W_hh_T, out=dh)  # to s_{t-1}
    return dh


def rnn_layer_backward(
    dS: np.ndarray, S: np.ndarray, W_hh: np.ndarray, dh_last: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backprop through one layer's T steps.

    dS: (T, B, H) gradient reaching S[1:] from outside the recurrence (head or layer above);
    dh_last: optional extra gradient on the last state. Returns (dxw, dW_hh, dh0), where
    dxw (T, B, H) is the gradient of the pre-activation (so also of b_h and of x_t W_xh).
    """
    T, B, H = dS.shape
    dxw = np.array(dS, copy=True, order="C")
    dh = _layer_backward_inplace(dxw, S, W_hh, dh_last)
    # every step's contribution to dW_hh summed in one GEMM: sum_t s_{t-1}^T dpre_t
    dW_hh = S[:-1].reshape(T * B, H).T @ dxw.reshape(T * B, H)
    return dxw, dW_hh, dh


# ---- loss -----------------------------------------------------------------------------


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean -ln softmax(logits)[target] over rows, and the probabilities. Overwrites `logits`.

    Subtracting a constant from each row (its maximum, or the maximum of all rows when the
    logits span a safe range) leaves the probabilities unchanged and keeps exp finite, so
    logits of +-1e4 still give a finite loss and gradient.
    """
    N, V = logits.shape
    loss = _softmax_cross_entropy_rows(logits, np.arange(0, N * V, V) + np.asarray(targets).reshape(N))
    return loss, logits


def _softmax_cross_entropy_rows(z: np.ndarray, flat_targets: np.ndarray) -> float:
    """softmax_cross_entropy in place on z (N, V), z becoming the probabilities; flat_targets
    are the indices of the target entries in z's memory.

    Any per-row constant may be subtracted before exp. When the whole array spans less than
    `_SHIFT_SPAN` of its dtype (always so in practice) one shared constant, the global maximum,
    is as safe as the row maxima: every exp lies in [e^-span, 1], far from under- and overflow.
    That replaces a slow reduction over short rows by a fast one over the whole array. Huge
    logits fall back to the row maxima.
    """
    hi = z.max()
    span = hi - z.min()
    if span <= _SHIFT_SPAN.get(z.dtype.char, 0.0):
        z -= hi
    else:
        z -= z.max(axis=1, keepdims=True)
    target_logits = np.take(z.reshape(-1), flat_targets).astype(np.float64)
    np.exp(z, out=z)
    sums = z.sum(axis=1)
    loss = float(np.mean(np.log(sums, dtype=np.float64) - target_logits))
    z /= sums[:, None]
    return loss


# well inside the range where exp(-span) is a normal number of the dtype (-ln(tiny) * 0.7)
_SHIFT_SPAN = {np.dtype(t).char: float(-np.log(np.finfo(t).tiny) * 0.7) for t in (np.float32, np.float64)}


# ---- the whole model ------------------------------------------------------------------


class ForwardCache(NamedTuple):
    """What backward needs from forward (no weights inside).

    Arrays may live in the module's scratch pool; they stay valid while the cache is held.
    """

    ids: np.ndarray  # (T, B) input ids, time-major
    targets: np.ndarray  # (T*B,) target ids, time-major
    states: list  # per layer (T+1, B, H) outputs h; [0] is the initial one
    layer_inputs: list  # per layer: its input (T, B, H) after dropout; None for layer 0
    masks: list  # per layer: the inverted-dropout mask on its output, or None
    head_input: np.ndarray  # (T*B, H) top-layer states after dropout
    probs: np.ndarray  # (T*B, V) softmax probabilities
    cell_caches: list  # per layer: the gated cell's cache (cells.LSTMCache / GRUCache); None for rnn


def _dropout_mask(shape, p: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """Inverted dropout: keep with probability 1-p and scale by 1/(1-p), so eval needs no change."""
    keep = rng.random(shape, dtype=dtype) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def forward(
    params: Params,
    ids: np.ndarray,
    targets: np.ndarray,
    h0: list[np.ndarray],
    *,
    dropout: float = 0.0,
    rng: np.random.Generator | None = None,
) -> tuple[float, list[np.ndarray], ForwardCache]:
    """Loss of one chunk. ids, targets: (B, T) ints; h0: per layer (B, H).

    Returns (mean loss in nats/char, last state per layer, cache for backward).
    """
    if dropout > 0 and rng is None:
        raise ValueError("dropout needs an rng")
    B, T = ids.shape
    if T < 1:
        raise CharnnError("a chunk needs at least one time step (seq_len >= 1)")
    L = num_layers_of(params)
    W_hy = params["head.W_hy"]
    H, V = W_hy.shape
    N = T * B
    dtype = W_hy.dtype
    ids_tm = np.ascontiguousarray(ids.T)  # (T, B)
    V_in = params["head.W_hy"].shape[1]
    if ids_tm.size and (ids_tm.max() >= V_in or ids_tm.min() < 0):
        raise IndexError(f"input id out of range for a vocabulary of {V_in} characters")
    cell = cell_of(params)
    W_in_name, b_in_name, W_rec_name = PARAM_NAMES[cell]
    states, layer_inputs, masks, cell_caches, last = [], [], [], [], []
    x = None
    for layer in range(L):
        W_in = params[f"rnn.{layer}.{W_in_name}"]
        b_in = params[f"rnn.{layer}.{b_in_name}"]
        W_rec = params[f"rnn.{layer}.{W_rec_name}"]
        if cell == "rnn":
            S = _scratch((T + 1, B, H), dtype)
            S[0] = h0[layer]
            xw = S[1:]  # the input part is written where the states go, then overwritten in place
        else:
            xw = _scratch((T, B, W_in.shape[1]), dtype)
        if layer == 0:
            # the row lookup equals one_hot(ids) @ W_in; adding the bias to the V rows first
            # gives the same sums as adding it to all T*B looked-up rows
            # (mode="raise" would buffer the whole output: 4x slower; the range is checked above)
            np.take(W_in + b_in, ids_tm, axis=0, out=xw, mode="wrap")
        else:
            np.matmul(x.reshape(N, H), W_in, out=xw.reshape(N, -1))
            xw += b_in
        if cell == "rnn":
            _recur(S, W_rec)
            cell_cache, state_T = None, S[-1].copy()
        elif cell == "lstm":
            S, state_T, cell_cache = cells.lstm_layer_forward(xw, h0[layer], W_rec, overwrite_input=True)
        else:
            S, state_T, cell_cache = cells.gru_layer_forward(xw, h0[layer], W_rec, params[f"rnn.{layer}.b_h"])
        states.append(S)
        cell_caches.append(cell_cache)
        last.append(state_T)
        layer_inputs.append(x)
        x = S[1:]
        mask = None
        if dropout > 0:
            mask = _dropout_mask(x.shape, dropout, rng, dtype)
            x = x * mask
        masks.append(mask)
    head_input = x.reshape(N, H)
    logits = _scratch((N, V), dtype)
    np.matmul(head_input, W_hy, out=logits)
    logits += params["head.b_y"]
    targets_tm = np.ascontiguousarray(targets.T).reshape(N)
    loss = _softmax_cross_entropy_rows(logits, np.arange(0, N * V, V) + targets_tm)
    cache = ForwardCache(ids_tm, targets_tm, states, layer_inputs, masks, head_input, logits, cell_caches)
    return loss, last, cache


def _scatter_rows(ids: np.ndarray, rows: np.ndarray, num_ids: int) -> np.ndarray:
    """sum of rows[i] into out[ids[i]]: the gradient of the row lookup W[ids].

    Written as one_hot(ids)^T @ rows: one GEMM, far faster than np.add.at (or sort + reduceat).
    """
    one_hot_t = _scratch((num_ids, ids.size), rows.dtype)
    one_hot_t.fill(0)
    one_hot_t[ids.reshape(-1), np.arange(ids.size)] = 1
    return one_hot_t @ rows


def backward(params: Params, cache: ForwardCache) -> tuple[Params, list[np.ndarray]]:
    """Exact gradients of forward's loss, summed over every step of the chunk.

    Returns (grads with the keys of params, gradient of the loss w.r.t. each layer's initial
    state). The last state is handed on to the next chunk but not differentiated through.
    The cache is only read, so backward may be called on it again.
    """
    T, B = cache.ids.shape
    N = T * B
    W_hy = params["head.W_hy"]
    H, V = W_hy.shape
    dtype = W_hy.dtype
    inv_n = dtype.type(1.0 / N)  # the loss is a mean over B*T predictions
    dlogits = _scratch((N, V), dtype)
    np.multiply(cache.probs, inv_n, out=dlogits)
    dlogits.reshape(-1)[np.arange(0, N * V, V) + cache.targets] -= inv_n
    grads: Params = {
        "head.W_hy": cache.head_input.T @ dlogits,
        "head.b_y": dlogits.sum(axis=0),
    }
    dx = _scratch((T, B, H), dtype)
    np.matmul(dlogits, np.ascontiguousarray(W_hy.T), out=dx.reshape(N, H))
    del dlogits
    cell = cell_of(params)
    W_in_name, b_in_name, W_rec_name = PARAM_NAMES[cell]
    dh0 = []
    for layer in range(len(cache.states) - 1, -1, -1):
        if cache.masks[layer] is not None:
            dx *= cache.masks[layer]
        name = f"rnn.{layer}."
        W_in, W_rec = params[name + W_in_name], params[name + W_rec_name]
        S = cache.states[layer]
        if cell == "rnn":
            dh = _layer_backward_inplace(dx, S, W_rec, None)  # dx is now the pre-activation gradient
            dxa = dx
            # every step's contribution to dW_hh summed in one GEMM: sum_t s_{t-1}^T dpre_t
            grads[name + W_rec_name] = S[:-1].reshape(N, H).T @ dx.reshape(N, H)
        elif cell == "lstm":
            dxa, grads[name + W_rec_name], dh = cells.lstm_layer_backward(dx, cache.cell_caches[layer], W_rec)
        else:
            dxa, grads[name + W_rec_name], grads[name + "b_h"], dh = cells.gru_layer_backward(
                dx, cache.cell_caches[layer], W_rec
            )
        dxa2 = dxa.reshape(N, -1)
        grads[name + b_in_name] = dxa2.sum(axis=0)
        if layer == 0:
            grads[name + W_in_name] = _scatter_rows(cache.ids, dxa2, W_in.shape[0])
        else:
            grads[name + W_in_name] = cache.layer_inputs[layer].reshape(N, H).T @ dxa2
            dx_below = _scratch((T, B, H), dtype)
            np.matmul(dxa2, np.ascontiguousarray(W_in.T), out=dx_below.reshape(N, H))
            del dxa2, dxa
            dx = dx_below
            del dx_below
        dh0.append(dh)
    dh0.reverse()
    return {name: grads[name] for name in params}, dh0


def check_finite(params: Params) -> None:
    """Raise if any parameter holds NaN or infinity (e.g. a corrupted or diverged checkpoint)."""
    for name, value in params.items():
        if not np.all(np.isfinite(value)):
            raise CharnnError(
                f"parameter {name} contains NaN or infinite values; the checkpoint is unusable, "
                "use an earlier one or train again with a lower learning rate or clipping"
            )
