"""The Elman RNN language model: parameters, forward over a chunk, exact backward through time.

Letters: B streams, T steps, H hidden units, V characters, L layers. Row vectors; for each
layer l and step t:

    s_t      = tanh(x_t W_xh + s_{t-1} W_hh + b_h)   x_t: one-hot char (l = 0) or layer l-1's state
    logits_t = s_t W_hy + b_y,   p_t = softmax(logits_t)
    loss     = mean over the B*T predictions of -ln p_t[target_t]

Parameters, gradients and optimizer state are plain dicts of arrays with the same keys.
Internally everything is time-major, (T, B, H), so step t reads one contiguous (B, H) block
and every weight gradient is one GEMM over all T*B rows.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from charnn.errors import CharnnError

Params = dict[str, np.ndarray]

INITS = ("normal", "uniform", "xavier", "orthogonal")


def param_shapes(vocab_size: int, hidden_size: int, num_layers: int) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter; the names are the checkpoint keys."""
    if vocab_size < 1:
        raise CharnnError("vocabulary size is 0: the model needs at least one character")
    if hidden_size < 1:
        raise CharnnError(f"hidden_size must be >= 1 (got {hidden_size})")
    if num_layers < 1:
        raise CharnnError(f"num_layers must be >= 1 (got {num_layers})")
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        fan_in = vocab_size if layer == 0 else hidden_size
        shapes[f"rnn.{layer}.W_xh"] = (fan_in, hidden_size)
        shapes[f"rnn.{layer}.W_hh"] = (hidden_size, hidden_size)
        shapes[f"rnn.{layer}.b_h"] = (hidden_size,)
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
) -> Params:
    """Fresh parameters; biases start at zero.

    normal: N(0, scale^2) (scale 1 is the classic way to make gradients explode);
    uniform: U(-scale, scale) (char-rnn's 0.08); xavier: U(+-sqrt(6 / (fan_in + fan_out)));
    orthogonal: W_hh orthogonal, the other matrices xavier.
    """
    if init not in INITS:
        raise CharnnError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    params: Params = {}
    for name, shape in param_shapes(vocab_size, hidden_size, num_layers).items():
        if len(shape) == 1:
            w = np.zeros(shape)
        elif init == "normal":
            w = rng.normal(0.0, scale, shape)
        elif init == "uniform":
            w = rng.uniform(-scale, scale, shape)
        elif init == "orthogonal" and name.endswith("W_hh"):
            w = _orthogonal(shape, rng)
        else:
            bound = np.sqrt(6.0 / (shape[0] + shape[1]))
            w = rng.uniform(-bound, bound, shape)
        params[name] = np.ascontiguousarray(w, dtype=dtype)
    return params


def num_layers_of(params: Params) -> int:
    return sum(1 for name in params if name.endswith(".W_hh"))


def zero_state(params: Params, batch_size: int) -> list[np.ndarray]:
    """The initial hidden state: one (B, H) zero array per layer."""
    H = params["head.W_hy"].shape[0]
    dtype = params["head.W_hy"].dtype
    return [np.zeros((batch_size, H), dtype) for _ in range(num_layers_of(params))]


# ---- one recurrent layer over T steps -------------------------------------------------


def rnn_layer_forward(xw: np.ndarray, h0: np.ndarray, W_hh: np.ndarray) -> np.ndarray:
    """States of one layer. xw: (T, B, H) input part x_t W_xh + b_h; h0: (B, H).

    Returns S of shape (T+1, B, H) with S[0] = h0 and S[t+1] = tanh(xw[t] + S[t] W_hh).
    """
    T = xw.shape[0]
    S = np.empty((T + 1,) + h0.shape, dtype=xw.dtype)
    S[0] = h0
    for t in range(T):
        st = S[t + 1]
        np.matmul(S[t], W_hh, out=st)
        st += xw[t]
        np.tanh(st, out=st)
    return S


def rnn_layer_backward(
    dS: np.ndarray, S: np.ndarray, W_hh: np.ndarray, dh_last: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backprop through one layer's T steps.

    dS: (T, B, H) gradient reaching S[1:] from outside the recurrence (head or layer above);
    dh_last: optional extra gradient on the last state. Returns (dxw, dW_hh, dh0), where
    dxw (T, B, H) is the gradient of the pre-activation (so also of b_h and of x_t W_xh).
    """
    T, B, H = dS.shape
    # backprop through tanh needs 1 - s^2 at every step: one vectorised pass up front
    dtanh = S[1:] * S[1:]
    np.subtract(1, dtanh, out=dtanh)
    dxw = np.empty_like(dS)
    dh = np.zeros((B, H), dS.dtype) if dh_last is None else dh_last.copy()
    W_hh_T = W_hh.T
    for t in range(T - 1, -1, -1):
        dpre = dxw[t]
        np.add(dS[t], dh, out=dpre)  # total gradient on s_t: from outside + from step t+1
        dpre *= dtanh[t]  # through tanh
        np.matmul(dpre, W_hh_T, out=dh)  # to s_{t-1}
    # every step's contribution to dW_hh summed in one GEMM: sum_t s_{t-1}^T dpre_t
    dW_hh = S[:-1].reshape(T * B, H).T @ dxw.reshape(T * B, H)
    return dxw, dW_hh, dh


# ---- loss -----------------------------------------------------------------------------


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean -ln softmax(logits)[target] over rows, and the probabilities. Overwrites `logits`.

    Subtracting each row's maximum leaves the probabilities unchanged and keeps exp finite,
    so logits of +-1e4 still give a finite loss and gradient.
    """
    N = logits.shape[0]
    rows = np.arange(N)
    logits -= logits.max(axis=1, keepdims=True)
    target_logits = logits[rows, targets].astype(np.float64)
    probs = np.exp(logits, out=logits)
    sums = probs.sum(axis=1, keepdims=True)
    loss = float(np.mean(np.log(sums[:, 0], dtype=np.float64) - target_logits))
    probs /= sums
    return loss, probs


# ---- the whole model ------------------------------------------------------------------


class ForwardCache(NamedTuple):
    """What backward needs from forward (no weights inside)."""

    ids: np.ndarray  # (T, B) input ids, time-major
    targets: np.ndarray  # (T*B,) target ids, time-major
    states: list  # per layer (T+1, B, H); [0] is the initial state
    layer_inputs: list  # per layer: its input (T, B, H) after dropout; None for layer 0
    masks: list  # per layer: the inverted-dropout mask on its output, or None
    head_input: np.ndarray  # (T*B, H) top-layer states after dropout
    probs: np.ndarray  # (T*B, V) softmax probabilities


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
    dtype = W_hy.dtype
    ids_tm = np.ascontiguousarray(ids.T)  # (T, B)
    states, layer_inputs, masks = [], [], []
    x = None
    for layer in range(L):
        W_xh = params[f"rnn.{layer}.W_xh"]
        if layer == 0:
            xw = W_xh[ids_tm]  # (T, B, H): the row lookup equals one_hot(ids) @ W_xh
        else:
            xw = (x.reshape(T * B, H) @ W_xh).reshape(T, B, H)
        xw += params[f"rnn.{layer}.b_h"]
        S = rnn_layer_forward(xw, h0[layer], params[f"rnn.{layer}.W_hh"])
        states.append(S)
        layer_inputs.append(x)
        x = S[1:]
        mask = None
        if dropout > 0:
            mask = _dropout_mask(x.shape, dropout, rng, dtype)
            x = x * mask
        masks.append(mask)
    head_input = x.reshape(T * B, H)
    logits = head_input @ W_hy
    logits += params["head.b_y"]
    targets_tm = np.ascontiguousarray(targets.T).reshape(T * B)
    loss, probs = softmax_cross_entropy(logits, targets_tm)
    last = [S[-1].copy() for S in states]
    cache = ForwardCache(ids_tm, targets_tm, states, layer_inputs, masks, head_input, probs)
    return loss, last, cache


def _scatter_rows(ids: np.ndarray, rows: np.ndarray, num_ids: int) -> np.ndarray:
    """sum of rows[i] into out[ids[i]]: the gradient of the row lookup W[ids].

    Written as one_hot(ids)^T @ rows: one GEMM, far faster than np.add.at.
    """
    one_hot_t = np.zeros((num_ids, ids.size), dtype=rows.dtype)
    one_hot_t[ids.reshape(-1), np.arange(ids.size)] = 1
    return one_hot_t @ rows


def backward(params: Params, cache: ForwardCache) -> tuple[Params, list[np.ndarray]]:
    """Exact gradients of forward's loss, summed over every step of the chunk.

    Returns (grads with the keys of params, gradient of the loss w.r.t. each layer's initial
    state). The last state is handed on to the next chunk but not differentiated through.
    """
    T, B = cache.ids.shape
    N = T * B
    W_hy = params["head.W_hy"]
    H = W_hy.shape[0]
    dtype = W_hy.dtype
    dlogits = cache.probs.copy()
    dlogits[np.arange(N), cache.targets] -= 1
    dlogits *= dtype.type(1.0 / N)  # the loss is a mean over B*T predictions
    grads: Params = {
        "head.W_hy": cache.head_input.T @ dlogits,
        "head.b_y": dlogits.sum(axis=0),
    }
    dx = (dlogits @ W_hy.T).reshape(T, B, H)
    dh0 = []
    for layer in range(len(cache.states) - 1, -1, -1):
        if cache.masks[layer] is not None:
            dx *= cache.masks[layer]
        W_xh = params[f"rnn.{layer}.W_xh"]
        dxw, dW_hh, dh = rnn_layer_backward(dx, cache.states[layer], params[f"rnn.{layer}.W_hh"])
        dxw2 = dxw.reshape(N, H)
        grads[f"rnn.{layer}.W_hh"] = dW_hh
        grads[f"rnn.{layer}.b_h"] = dxw2.sum(axis=0)
        if layer == 0:
            grads[f"rnn.{layer}.W_xh"] = _scatter_rows(cache.ids, dxw2, W_xh.shape[0])
        else:
            grads[f"rnn.{layer}.W_xh"] = cache.layer_inputs[layer].reshape(N, H).T @ dxw2
            dx = (dxw2 @ W_xh.T).reshape(T, B, H)
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
