"""The recurrent language model: parameters, forward over a chunk, exact backward through time.

Letters: B streams, T steps, H hidden units, V characters, L layers. Row vectors; for each
layer l and step t, with the cell (charnn/cells) running the recurrence:

    xa_t     = x_t W_in + b_in           x_t: one-hot char (l = 0) or layer l-1's output
    h_t      = cell(xa_t, state_{t-1})   Elman: tanh(xa_t + h_{t-1} W_hh); LSTM, GRU: gated
    logits_t = h_t W_hy + b_y,   p_t = softmax(logits_t)
    loss     = mean over the B*T predictions of -ln p_t[target_t]

charnn/reference.py computes the same per character, from the equations; the tests hold
this fast version to it. Parameters, gradients and optimizer state are plain dicts of arrays
with the same keys ("rnn.{l}.<short name>", "head.W_hy", "head.b_y"). Internally everything
is time-major, (T, B, H), so step t reads one contiguous (B, H) block and every weight
gradient is one GEMM over all T*B rows.

Speed notes (float32, measured with benchmarks/bench_train.py): the large per-chunk arrays
come from the caller's Workspace (charnn/workspace.py) instead of fresh page-faulting
allocations; the layer-0 input part is a row lookup written straight into its array with
np.take(mode="wrap") (mode="raise" buffers the whole output); and the softmax shifts by one
shared maximum when that is safe (see softmax_cross_entropy_rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from charnn.config import ModelConfig
from charnn.errors import CharnnError
from charnn.nn import cells
from charnn.nn.encoders import encoder
from charnn.nn.loss import softmax_cross_entropy_rows
from charnn.nn.workspace import FRESH, Workspace

Params = dict[str, np.ndarray]



def param_shapes(vocab_size: int, hidden_size: int, num_layers: int, cell: str = "rnn",
                 context: int = 1) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every parameter; the names are the checkpoint keys.

    Per layer l, rnn.{l}.<name> for the cell's parameters (in = V for layer 0, H above):
      rnn:  W_xh (in, H), W_hh (H, H), b_h (H)
      lstm: W_x (in, 4H), W_h (H, 4H), b (4H)                  gates i, f, g, o
      gru:  W_x (in, 3H), W_h (H, 3H), b_x (3H), b_h (3H)      gates r, z, n
      mlp:  W_x (in, H), b (H), with in = context * V at layer 0 (one block per position back)
    then head.W_hy (H, V), head.b_y (V).
    """
    if vocab_size < 1:
        raise CharnnError("vocabulary size is 0: the model needs at least one character")
    if hidden_size < 1 or num_layers < 1:
        raise CharnnError(f"hidden_size and num_layers must be >= 1 (got {hidden_size}, {num_layers})")
    c = cells.get(cell)
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(num_layers):
        fan_in = encoder(c.windowed, context).fan_in(vocab_size) if layer == 0 else hidden_size
        shapes.update({f"rnn.{layer}.{k}": s for k, s in c.param_shapes(fan_in, hidden_size).items()})
    shapes["head.W_hy"] = (hidden_size, vocab_size)
    shapes["head.b_y"] = (vocab_size,)
    return shapes


def _orthogonal(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A random (semi-)orthogonal matrix: QR of a Gaussian, signs fixed so Q is uniformly drawn."""
    a = rng.standard_normal((max(shape), min(shape)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q if shape[0] >= shape[1] else q.T


# model.init: name -> init(shape, gates, recurrent, scale, rng), a fresh matrix drawn from rng


def _normal(shape, gates, recurrent, scale, rng):
    return rng.normal(0.0, scale, shape)  # N(0, scale^2)


def _uniform(shape, gates, recurrent, scale, rng):
    return rng.uniform(-scale, scale, shape)  # U(+-scale)


def _xavier(shape, gates, recurrent, scale, rng):
    """U(+-sqrt(6 / (fan_in + fan_out))) with the fan-out of one gate block."""
    bound = np.sqrt(6.0 / (shape[0] + shape[1] // gates))
    return rng.uniform(-bound, bound, shape)


def _orthogonal_blocks(shape, gates, recurrent, scale, rng):
    """Orthogonal gate blocks for the recurrent matrix; xavier for the others."""
    if not recurrent:
        return _xavier(shape, gates, recurrent, scale, rng)
    return np.concatenate([_orthogonal((shape[0], shape[1] // gates), rng) for _ in range(gates)], axis=1)


INITS = {"normal": _normal, "uniform": _uniform, "xavier": _xavier, "orthogonal": _orthogonal_blocks}


def init_params(vocab_size: int, hidden_size: int, num_layers: int = 1, *, init: str = "uniform",
                scale: float = 0.08, rng: np.random.Generator, dtype=np.float32, cell: str = "rnn",
                gate_init: str = "default", chrono_max: int = 100, context: int = 1) -> Params:
    """Fresh parameters, drawn in checkpoint-key order from `rng`; biases start as the cell says
    (zero, except the LSTM's forget gate at 1), or with gate_init "chrono" as the cell's chrono
    initialisation for lags up to chrono_max (drawn after every matrix)."""
    c = cells.get(cell)
    params: Params = {}
    for name, shape in param_shapes(vocab_size, hidden_size, num_layers, cell, context).items():
        if len(shape) == 1:
            w = np.zeros(shape)
        else:
            layer_matrix = name.startswith("rnn.")
            w = INITS[init](shape, c.gates if layer_matrix else 1,
                            c.recurrent_weight is not None and name.endswith("." + c.recurrent_weight), scale, rng)
        params[name] = np.ascontiguousarray(w, dtype=dtype)
    for layer in range(num_layers):
        c.init_biases(layer_params(params, layer), hidden_size)
    if gate_init == "chrono":
        for layer in range(num_layers):
            c.chrono_biases(layer_params(params, layer), hidden_size, chrono_max, rng)
    return params


def init_for(m: ModelConfig, vocab_size: int, rng: np.random.Generator, dtype=None) -> Params:
    """Fresh parameters as a ModelConfig describes them (dtype: the config's unless given)."""
    return init_params(vocab_size, m.hidden_size, m.num_layers, init=m.init, scale=m.init_scale, rng=rng,
                       dtype=np.dtype(dtype or m.dtype), cell=m.cell, gate_init=m.gate_init,
                       chrono_max=m.chrono_max, context=m.window)


def num_layers_of(params: Params) -> int:
    return len({name.split(".")[1] for name in params if name.startswith("rnn.")})


def layer_params(params: Params, layer: int) -> dict[str, np.ndarray]:
    """One layer's parameters by short name (views: writing them writes params)."""
    prefix = f"rnn.{layer}."
    return {name[len(prefix):]: p for name, p in params.items() if name.startswith(prefix)}


def context_of(params: Params, cell: str) -> int:
    """Characters layer 0 reads at once: 1, or a windowed cell's context (its input rows / V)."""
    c = cells.get(cell)
    return params[f"rnn.0.{c.input_weight}"].shape[0] // params["head.W_hy"].shape[1]


def encoder_of(params: Params, cell: str):
    """The encoder layer 0 reads through (charnn/nn/encoders.py)."""
    return encoder(cells.get(cell).windowed, context_of(params, cell))


def carried_widths(cell: str, hidden_size: int, num_layers: int, context: int = 1) -> list[int]:
    """Per layer, the width of what it carries to the next chunk: its cell's state, except that
    layer 0 of a windowed cell (which has no state) carries its encoder's last characters."""
    c = cells.get(cell)
    widths = [c.state_width(hidden_size)] * num_layers
    if c.windowed:
        widths[0] = encoder(True, context).context_width()
    return widths


def zero_state(params: Params, batch_size: int, cell: str) -> list[np.ndarray]:
    """The initial carried state: one (B, w) zero array per layer (w = H, or 2H for the LSTM;
    for a windowed cell, W - 1 characters at layer 0 (int ids + 1, 0 = "before the text") and
    nothing above)."""
    W_hy = params["head.W_hy"]
    widths = carried_widths(cell, W_hy.shape[0], num_layers_of(params), context_of(params, cell))
    state = [np.zeros((batch_size, w), W_hy.dtype) for w in widths]
    if cells.get(cell).windowed:
        state[0] = state[0].astype(np.int64)
    return state


def carry_for_file(state: list[np.ndarray], dtype) -> list[np.ndarray]:
    """The carried state as a checkpoint stores it: every layer in the model's float dtype."""
    return [np.asarray(s, dtype) for s in state]


def carry_from_file(state: list[np.ndarray], cell: str) -> list[np.ndarray]:
    """The carried state a checkpoint stored, as the model uses it (a window's characters as ints)."""
    if cells.get(cell).windowed and state:
        state = [np.rint(state[0]).astype(np.int64), *state[1:]]
    return state


# ---- the whole model ------------------------------------------------------------------


@dataclass
class ForwardCache:
    """What backward needs from forward (no weights inside).

    `buffers` lists the arrays taken from a Workspace; they stay this cache's until
    `Workspace.release(cache)`, after which the cache may not be used.
    """

    cell: str
    ids: np.ndarray  # (T, B) input ids, time-major
    targets: np.ndarray  # (T*B,) target ids, time-major
    outputs: list  # per layer (T+1, B, H) outputs h; [0] is the initial one
    layer_inputs: list  # per layer: its input (T, B, H) after dropout; None for layer 0
    masks: list  # per layer: the inverted-dropout mask on its output ((T or 1, B, H)), or None
    weight_masks: list  # per layer: the DropConnect mask on its recurrent matrix, or None
    input_mask: np.ndarray | None  # (V,): which characters (rows of layer 0's input matrix) were kept
    context: np.ndarray  # (B, W-1) the characters layer 0's encoder carried in ((B, 0) for one at a time)
    head_input: np.ndarray  # (T*B, H) top-layer outputs after dropout
    probs: np.ndarray  # (T*B, V) softmax probabilities
    cell_caches: list  # per layer: the cell's own cache
    buffers: list = field(default_factory=list)
    released: bool = False


@dataclass(frozen=True)
class Noise:
    """Regularisation while training; every mask is drawn from the run's generator once per chunk.

    dropout: inverted dropout on each layer's output (the next layer's input, and the head's);
    locked: one dropout mask per stream for the whole chunk (variational dropout, Gal and
    Ghahramani 2016) instead of one per step; weight_drop: DropConnect on each recurrent matrix,
    one mask per chunk (AWD-LSTM, Merity et al. 2017); input_dropout: whole characters dropped,
    their row of layer 0's input matrix, one mask per chunk. All scale the kept values by 1/(1-p).
    """

    dropout: float = 0.0
    locked: bool = False
    weight_drop: float = 0.0
    input_dropout: float = 0.0

    @classmethod
    def of(cls, m: ModelConfig) -> "Noise":
        """The noise a ModelConfig asks for."""
        return cls(m.dropout, m.dropout_mode == "locked", m.weight_drop, m.input_dropout)

    @property
    def any(self) -> bool:
        return bool(self.dropout or self.weight_drop or self.input_dropout)


NO_NOISE = Noise()


def dropout_mask(shape, p: float, rng: np.random.Generator, dtype) -> np.ndarray:
    """Inverted dropout: keep with probability 1-p and scale by 1/(1-p), so eval needs no change."""
    keep = rng.random(shape, dtype=dtype) >= p
    return keep.astype(dtype) * dtype.type(1.0 / (1.0 - p))


def _masked(p: dict, name: str, mask: np.ndarray | None) -> dict:
    """The layer's parameters with `name` multiplied by a mask (a copy; p itself is unchanged)."""
    return p if mask is None else dict(p, **{name: p[name] * mask})


def row_mask(input_mask: np.ndarray | None, rows: int) -> np.ndarray | None:
    """The character mask for every row of layer 0's input matrix (the MLP's has one block per position)."""
    return None if input_mask is None else np.tile(input_mask, rows // len(input_mask))[:, None]


def noisy_layer(params: Params, layer: int, c, cache: "ForwardCache") -> dict:
    """One layer's parameters as the chunk saw them: its recurrent matrix and (layer 0) its input rows masked."""
    p = _masked(layer_params(params, layer), c.recurrent_weight, cache.weight_masks[layer])
    if layer > 0:
        return p
    return _masked(p, c.input_weight, row_mask(cache.input_mask, p[c.input_weight].shape[0]))


def input_part(p: dict, c, x: np.ndarray, out: np.ndarray) -> None:
    """out (T, B, kH) = x_t W_in + b_in for every step above layer 0: one GEMM."""
    T, B, _ = x.shape
    np.matmul(x.reshape(T * B, -1), p[c.input_weight], out=out.reshape(T * B, -1))
    out += p[c.input_bias]


def forward(params: Params, ids: np.ndarray, targets: np.ndarray, h0: list[np.ndarray], *, cell: str,
            noise: Noise = NO_NOISE, rng: np.random.Generator | None = None,
            ws: Workspace = FRESH) -> tuple[float, list[np.ndarray], ForwardCache]:
    """Loss of one chunk. ids, targets: (B, T) ints; h0: per layer what it carries in (zero_state).

    Returns (mean loss in nats/char, what each layer carries out, cache for backward). The
    masks of `noise` are drawn from rng in a fixed order: input rows, then per layer the
    recurrent matrix's and the output's.
    """
    if noise.any and rng is None:
        raise ValueError("dropout needs an rng")
    c, enc = cells.get(cell), encoder_of(params, cell)
    W_hy = params["head.W_hy"]
    H, V = W_hy.shape
    ids_tm = time_major_ids(ids, V)  # (T, B)
    T, B = ids_tm.shape
    N, dtype = T * B, W_hy.dtype
    carries_context = enc.context_width() > 0
    context = h0[0] if carries_context else np.zeros((B, 0), np.int64)
    cache = ForwardCache(cell=cell, ids=ids_tm, targets=np.ascontiguousarray(targets.T).reshape(N), outputs=[],
                         layer_inputs=[], masks=[], weight_masks=[], input_mask=None, context=context,
                         head_input=None, probs=None, cell_caches=[])
    if noise.input_dropout:
        cache.input_mask = dropout_mask((V,), noise.input_dropout, rng, dtype)
    x, last_states = None, []
    for layer in range(len(h0)):
        p = layer_with_masks(params, layer, c, cache, noise, rng)
        xa = ws.take((T + 1, B, c.gates * H), dtype)  # row 0 spare; handed to the cell (see Cell.forward)
        if layer == 0:
            carried = enc.input_part(p[c.input_weight], p[c.input_bias], ids_tm, context, xa[1:])
            state0 = np.zeros((B, 0), dtype) if carries_context else h0[0]
        else:
            input_part(p, c, x, xa[1:])
            carried, state0 = None, h0[layer]
        h, last, cell_cache = c.forward(xa, state0, p, ws)
        cache.buffers.extend(cell_cache.buffers)
        cache.outputs.append(h)
        cache.cell_caches.append(cell_cache)
        cache.layer_inputs.append(x)
        last_states.append(carried if carried is not None else last)
        x = dropped(h[1:], noise, rng, cache)
    cache.head_input = x.reshape(N, H)
    logits = ws.take((N, V), dtype)
    cache.buffers.append(logits)
    np.matmul(cache.head_input, W_hy, out=logits)
    logits += params["head.b_y"]
    loss = softmax_cross_entropy_rows(logits, np.arange(0, N * V, V) + cache.targets)
    cache.probs = logits
    return loss, last_states, cache


def time_major_ids(ids: np.ndarray, V: int) -> np.ndarray:
    """(B, T) ids as a contiguous (T, B) array, checked: at least one step, every id < V."""
    if ids.shape[1] < 1:
        raise CharnnError("a chunk needs at least one time step (seq_len >= 1)")
    ids_tm = np.ascontiguousarray(ids.T)
    if ids_tm.size and (ids_tm.max() >= V or ids_tm.min() < 0):
        raise IndexError(f"input id out of range for a vocabulary of {V} characters")
    return ids_tm


def layer_with_masks(params: Params, layer: int, c, cache: ForwardCache, noise: Noise, rng) -> dict:
    """Draw the layer's DropConnect mask (if any) into the cache, and return its parameters as the chunk sees them."""
    mask = None
    if noise.weight_drop:  # (the config allows it only for cells with a recurrent matrix)
        W_rec = params[f"rnn.{layer}.{c.recurrent_weight}"]
        mask = dropout_mask(W_rec.shape, noise.weight_drop, rng, W_rec.dtype)
    cache.weight_masks.append(mask)
    return noisy_layer(params, layer, c, cache)


def dropped(h: np.ndarray, noise: Noise, rng, cache: ForwardCache) -> np.ndarray:
    """A layer's output as the next layer (or the head) reads it: times its dropout mask, recorded in the cache."""
    mask = None
    if noise.dropout:
        mask = dropout_mask((1,) + h.shape[1:] if noise.locked else h.shape, noise.dropout, rng, h.dtype)
        h = h * mask
    cache.masks.append(mask)
    return h


def backward(params: Params, cache: ForwardCache, ws: Workspace = FRESH) -> tuple[Params, list[np.ndarray]]:
    """Exact gradients of forward's loss, summed over every step of the chunk.

    Returns (grads with the keys of params, gradient of the loss w.r.t. each layer's initial
    state). The last state is handed on to the next chunk but not differentiated through.
    The cache is only read, so backward may be called on it again (until it is released).
    """
    if cache.released:
        raise ValueError("this forward cache was released to its workspace; run forward again")
    c, enc = cells.get(cache.cell), encoder_of(params, cache.cell)
    T, B = cache.ids.shape
    N = T * B
    W_hy = params["head.W_hy"]
    H, V = W_hy.shape
    inv_n = W_hy.dtype.type(1.0 / N)  # the loss is a mean over B*T predictions
    dlogits = ws.take((N, V), W_hy.dtype)
    np.multiply(cache.probs, inv_n, out=dlogits)
    dlogits.reshape(-1)[np.arange(0, N * V, V) + cache.targets] -= inv_n
    grads: Params = {"head.W_hy": cache.head_input.T @ dlogits, "head.b_y": dlogits.sum(axis=0)}
    dx = ws.take((T, B, H), W_hy.dtype)
    np.matmul(dlogits, np.ascontiguousarray(W_hy.T), out=dx.reshape(N, H))
    ws.give(dlogits)
    dh0 = []
    for layer in range(len(cache.outputs) - 1, -1, -1):
        if cache.masks[layer] is not None:
            dx *= cache.masks[layer]
        p = noisy_layer(params, layer, c, cache)
        dxa, layer_grads, dstate0 = c.backward(dx, cache.cell_caches[layer], p, ws)  # dx is the cell's now
        if cache.weight_masks[layer] is not None:  # DropConnect: only the kept entries learn
            layer_grads[c.recurrent_weight] *= cache.weight_masks[layer]
        dxa2 = dxa.reshape(N, -1)
        layer_grads[c.input_bias] = dxa2.sum(axis=0)
        if layer == 0:
            layer_grads[c.input_weight] = enc.input_grads(dxa2, cache.ids, cache.context, p[c.input_weight], ws)
            if cache.input_mask is not None:  # a dropped character's rows get no gradient
                layer_grads[c.input_weight] *= row_mask(cache.input_mask, p[c.input_weight].shape[0])
        else:
            layer_grads[c.input_weight] = cache.layer_inputs[layer].reshape(N, H).T @ dxa2
            dx = ws.take((T, B, H), W_hy.dtype)
            np.matmul(dxa2, np.ascontiguousarray(p[c.input_weight].T), out=dx.reshape(N, H))
        ws.give(dxa)
        grads.update({f"rnn.{layer}.{k}": g for k, g in layer_grads.items()})
        dh0.append(dstate0)
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
