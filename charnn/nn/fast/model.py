"""The model's forward and backward over a chunk on the fused kernels: charnn.nn.model's, float32,
for the recurrent cells reading one character at a time.

The same computation as model.forward and model.backward, in the same order (every dropout mask is
drawn from rng exactly as there, so a run draws the same masks on either path), with four changes
that each equal what they replace:
  * layer 0 reads its input part table[ids] inside the cell's kernel (table = W_in + b_in, as the
    one-hot encoder's lookup) and adds its input gradients into dW_in and db in the backward kernel;
  * in training, the softmax, the loss, dlogits and b_y's gradient are one kernel pass
    (softmax_xent_rows) after NumPy's exp;
  * transposed weights for the backward products are written by a tiled transpose kernel;
  * gradient matrices come from the workspace (fresh 4 MB arrays page-fault on every step) and go
    back to it after the update (`held`).
"""

from __future__ import annotations

import numpy as np

from charnn.nn import cells, model
from charnn.nn.fast import chunk_kernels as KC
from charnn.nn.fast.cells import CELLS, transposed
from charnn.nn.loss import shifted_exp, softmax_cross_entropy_rows
from charnn.nn.model import NO_NOISE, ForwardCache, Noise, Params
from charnn.nn.workspace import FRESH, Workspace

F = np.float32


def forward(params: Params, ids: np.ndarray, targets: np.ndarray, h0: list, *, cell: str,
            noise: Noise = NO_NOISE, rng: np.random.Generator | None = None, ws: Workspace = FRESH):
    """model.forward on the kernels (what evaluation runs): (loss, last states, cache), the cache's
    probs the softmax probabilities, as there."""
    cache, x, last = _layers(params, ids, targets, h0, cell, noise, rng, ws)
    logits, N, V = _logits(params, x, cache, ws)
    loss = softmax_cross_entropy_rows(logits, np.arange(0, N * V, V) + cache.targets)
    cache.probs = logits
    return loss, last, cache


def loss_and_grads(params: Params, ids: np.ndarray, targets: np.ndarray, h0: list, *, cell: str,
                   noise: Noise = NO_NOISE, rng: np.random.Generator | None = None, ws: Workspace = FRESH):
    """model.forward then model.backward, for a training step: (loss, last states, grads with the
    keys of params, held: the workspace arrays to give back once the grads are used). The forward
    cache is released to ws here."""
    cache, x, last = _layers(params, ids, targets, h0, cell, noise, rng, ws)
    logits, N, V = _logits(params, x, cache, ws)
    db_y = np.empty(V, F)
    loss = _head_loss_and_grad(logits, cache.targets, db_y)  # logits are dlogits now
    held = []
    grads = {"head.W_hy": _take_matmul(cache.head_input.T, logits, ws, held), "head.b_y": db_y}
    dx = ws.take((*cache.ids.shape, x.shape[2]), F)
    np.matmul(logits, params["head.W_hy"].T, out=dx.reshape(N, -1))  # (V is small: the view costs nothing)
    for layer in range(len(cache.outputs) - 1, -1, -1):
        dx = _layer_backward(params, cache, layer, dx, grads, ws, held)
    ws.release(cache)
    return loss, last, {name: grads[name] for name in params}, held


def _layers(params, ids, targets, h0, cell, noise, rng, ws):
    """Every layer's forward, as in model.forward: (cache, the head's input (T, B, H), last states)."""
    if noise.any and rng is None:
        raise ValueError("dropout needs an rng")
    c, fc = cells.get(cell), CELLS[cell]
    W_hy = params["head.W_hy"]
    H, V = W_hy.shape
    ids_tm = model.time_major_ids(ids, V).astype(np.int64, copy=False)  # one compiled signature
    T, B = ids_tm.shape
    targets_tm = np.ascontiguousarray(targets.T, np.int64).reshape(T * B)  # int64 as warm-up compiles the head
    cache = ForwardCache(cell=cell, ids=ids_tm, targets=targets_tm,
                         outputs=[], layer_inputs=[], masks=[], weight_masks=[], input_mask=None,
                         context=np.zeros((B, 0), np.int64), head_input=None, probs=None, cell_caches=[])
    if noise.input_dropout:
        cache.input_mask = model.dropout_mask((V,), noise.input_dropout, rng, W_hy.dtype)
    x, last_states = None, []
    for layer in range(len(h0)):
        p = model.layer_with_masks(params, layer, c, cache, noise, rng)
        if layer == 0:
            table = p[c.input_weight] + p[c.input_bias]  # the one-hot encoder's rows
            h, last, cell_cache = fc.forward_ids(table, ids_tm, h0[0], p, ws)
        else:
            xa = ws.take((T + 1, B, c.gates * H), F)
            model.input_part(p, c, x, xa[1:])
            h, last, cell_cache = fc.forward(xa, h0[layer], p, ws)
        cache.buffers.extend(cell_cache.buffers)
        cache.outputs.append(h)
        cache.cell_caches.append(cell_cache)
        cache.layer_inputs.append(x)
        last_states.append(last)
        x = model.dropped(h[1:], noise, rng, cache)
    return cache, x, last_states


def _logits(params, x, cache, ws):
    N, V = x.shape[0] * x.shape[1], params["head.W_hy"].shape[1]
    cache.head_input = x.reshape(N, -1)
    logits = ws.take((N, V), F)
    cache.buffers.append(logits)
    np.matmul(cache.head_input, params["head.W_hy"], out=logits)
    logits += params["head.b_y"]
    return logits, N, V


def _head_loss_and_grad(z: np.ndarray, targets: np.ndarray, db_y: np.ndarray) -> float:
    """softmax_cross_entropy_rows and the head's dlogits and db_y (model.backward's), z becoming
    dlogits: the same shift, target logits and exp, then the rest in one kernel pass."""
    N, V = z.shape
    target_logits = shifted_exp(z, np.arange(0, N * V, V) + targets)
    return float(KC.softmax_xent_rows(z, targets, target_logits, F(1.0 / N), db_y))


def _take_matmul(a: np.ndarray, b: np.ndarray, ws: Workspace, held: list) -> np.ndarray:
    out = ws.take((a.shape[0], b.shape[1]), F)
    held.append(out)
    return np.matmul(a, b, out=out)


def _layer_backward(params, cache: ForwardCache, layer: int, dx, grads: dict, ws: Workspace, held: list):
    """One layer of model.backward; returns the gradient on the layer's input (None at layer 0)."""
    c, fc = cells.get(cache.cell), CELLS[cache.cell]
    if cache.masks[layer] is not None:
        dx *= cache.masks[layer]
    p = model.noisy_layer(params, layer, c, cache)
    acc = None
    if layer == 0:  # the kernels add the input gradients row by row, into zeroed arrays
        dW_in = ws.take(p[c.input_weight].shape, F)
        dW_in.fill(0)
        held.append(dW_in)
        acc = (cache.ids, dW_in, np.zeros(p[c.input_bias].shape, F))
    dxa, lg, _ = fc.backward(dx, cache.cell_caches[layer], p, ws, acc=acc)  # dx is the cell's now
    held.append(lg[c.recurrent_weight])
    if cache.weight_masks[layer] is not None:  # DropConnect: only the kept entries learn
        lg[c.recurrent_weight] *= cache.weight_masks[layer]
    if layer == 0:
        lg[c.input_weight], lg[c.input_bias] = acc[1], acc[2]
        if cache.input_mask is not None:  # a dropped character's rows get no gradient
            lg[c.input_weight] *= model.row_mask(cache.input_mask, acc[1].shape[0])
        dx_below = None
    else:
        N = dxa.shape[0] * dxa.shape[1]
        dxa2 = dxa.reshape(N, -1)
        lg[c.input_bias] = dxa2.sum(axis=0)
        lg[c.input_weight] = _take_matmul(cache.layer_inputs[layer].reshape(N, -1).T, dxa2, ws, held)
        dx_below = ws.take(cache.layer_inputs[layer].shape, F)
        W_in_T = transposed(p[c.input_weight], ws)
        np.matmul(dxa2, W_in_T, out=dx_below.reshape(N, -1))
        ws.give(W_in_T)
    ws.give(dxa)
    grads.update({f"rnn.{layer}.{k}": g for k, g in lg.items()})
    return dx_below
