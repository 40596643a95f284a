"""The plain reference model: the specification that charnn's fast kernels are tested against.

One character at a time, batch-first, float64, written straight from the equations (the
README's, and each cell's docstring). Nothing here is clever: explicit one-hot inputs, one
step function per cell and its backward beside it (in the cell's module, so a new cell brings
its own specification), Python loops over time and layers.
It is slow on purpose; tests/test_reference.py checks model.forward and model.backward
against it for every cell, and it answers "what exactly does charnn compute?".

    x_t: one-hot (B, V) at layer 0, the layer below's output above (times a dropout mask)
    Elman: h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)
    LSTM:  a = x_t W_x + h_{t-1} W_h + b; i, f, o = sigmoid(a_i, a_f, a_o); g = tanh(a_g)
           c_t = f c_{t-1} + i g; h_t = o tanh(c_t); the state is [h | c]
    GRU:   xa = x_t W_x + b_x; ha = h_{t-1} W_h + b_h; r, z = sigmoid(xa_r + ha_r, xa_z + ha_z)
           n = tanh(xa_n + r ha_n); h_t = (1 - z) n + z h_{t-1}
    y_t = softmax(h_t W_hy + b_y); loss = mean over B*T of -ln y_t[target_t]
"""

from __future__ import annotations

import numpy as np

from charnn.nn import cells
from charnn.nn.encoders import encoder

# Each cell's step and its backward live beside its fast kernels, in its own module
# (Cell.reference_step, Cell.reference_step_back): step(p, x, state) -> (h, new state, saved);
# step_back(p, saved, dh, dstate, g) adds to the gradients g and returns (dx, dstate_prev), where
# dh is the gradient on h_t from outside the recurrence and dstate the gradient on the new state
# from step t+1. Layer 0 reads the explicit one-hot inputs its encoder describes
# (charnn/nn/encoders.py, reference_input).


def _layers(params: dict) -> list[dict]:
    count = len({k.split(".")[1] for k in params if k.startswith("rnn.")})
    return [{k.split(".", 2)[2]: v for k, v in params.items() if k.startswith(f"rnn.{l}.")} for l in range(count)]


def _input_mask_rows(mask, rows: int):
    """The character mask for every row of layer 0's input matrix (a window has one block of V per position)."""
    return np.tile(mask, rows // len(mask))[:, None]


def _noisy_layers(params, c, weight_masks, input_mask) -> list[dict]:
    """Each layer's parameters as the chunk sees them: W_rec * its DropConnect mask, layer 0's
    input rows * the character mask."""
    layers = _layers(params)
    for l, p in enumerate(layers):
        if weight_masks is not None and weight_masks[l] is not None:
            p[c.recurrent_weight] = p[c.recurrent_weight] * weight_masks[l]
        if l == 0 and input_mask is not None:
            p[c.input_weight] = p[c.input_weight] * _input_mask_rows(input_mask, len(p[c.input_weight]))
    return layers


def _encoder(params, c):
    V = params["head.W_hy"].shape[1]
    return encoder(c.windowed, params[f"rnn.0.{c.input_weight}"].shape[0] // V)


def forward(params, cell, ids, targets, state0, masks=None, perturb=None, weight_masks=None, input_mask=None):
    """Run the chunk ids (B, T) from the states state0 (per layer (B, w)).

    masks: per layer a (B, T, H) dropout mask on that layer's output (or (B, 1, H): one per
    stream for the chunk), or None. weight_masks: per layer a mask on its recurrent matrix, or
    None; input_mask: (V,) a mask on the rows of layer 0's input matrix, or None.
    perturb: {(layer, t, "state"): d} adds d to the output h_t (t = 1..T) of a layer after it is
    computed; {(layer, t, "W"): d} uses the recurrent matrix + d in the step producing h_t.
    Returns a record: loss (mean), losses (B, T), probs (B, T, V), outputs (per layer, per
    t = 0..T, (B, H)), last states, and what backward needs.
    """
    c = cells.get(cell)
    enc = _encoder(params, c)
    perturb = perturb or {}
    layers = _noisy_layers(params, c, weight_masks, input_mask)
    B, T = ids.shape
    V = params["head.W_hy"].shape[1]
    H = params["head.W_hy"].shape[0]
    windowed = enc.context_width() > 0  # layer 0 carries its window's characters, and no cell state
    context = state0[0] if windowed else None
    states = [np.zeros((B, 0)) if windowed and l == 0 else s.astype(np.float64) for l, s in enumerate(state0)]
    # h_0: a cell's output is the first H columns of its state; a cell without state has none (zero)
    outputs = [[s[:, :H] if s.shape[1] >= H else np.zeros((B, H))] for s in states]
    saved = [[None] * T for _ in layers]
    losses, probs = np.zeros((B, T)), np.zeros((B, T, V))
    for t in range(T):
        x, context = enc.reference_input(ids[:, t], context, V)
        for l, p in enumerate(layers):
            if (l, t + 1, "W") in perturb:
                p = dict(p, **{c.recurrent_weight: p[c.recurrent_weight] + perturb[(l, t + 1, "W")]})
            h, states[l], saved[l][t] = c.reference_step(p, x, states[l])
            if (l, t + 1, "state") in perturb:
                h = h + perturb[(l, t + 1, "state")]
                states[l] = np.concatenate([h, states[l][:, H:]], axis=1)
            outputs[l].append(h)
            x = h if masks is None or masks[l] is None else h * masks[l][:, min(t, masks[l].shape[1] - 1)]
        logits = x @ params["head.W_hy"] + params["head.b_y"]
        y = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[:, t] = y / y.sum(axis=1, keepdims=True)
        losses[:, t] = -np.log(probs[np.arange(B), t, targets[:, t]])
    last = [context if windowed and l == 0 else s for l, s in enumerate(states)]
    return {"loss": losses.mean(), "losses": losses, "probs": probs, "outputs": outputs, "last": last,
            "saved": saved, "masks": masks, "ids": ids, "targets": targets, "cell": cell,
            "weight_masks": weight_masks, "input_mask": input_mask}


def backward(params, record):
    """(gradients of record's mean loss by parameter name, gradient on each layer's initial state)."""
    c = cells.get(record["cell"])
    layers = _noisy_layers(params, c, record["weight_masks"], record["input_mask"])
    ids, targets, masks = record["ids"], record["targets"], record["masks"]
    B, T = ids.shape
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    layer_grads = [{k.split(".", 2)[2]: grads[k] for k in grads if k.startswith(f"rnn.{l}.")} for l in range(len(layers))]
    dstates = [np.zeros(s.shape) for s in record["last"]]  # the last state is not differentiated through
    if c.windowed:  # layer 0 carries characters, not a state: nothing to differentiate
        dstates[0] = np.zeros((B, 0))
    for t in range(T - 1, -1, -1):
        dlogits = record["probs"][:, t].copy()
        dlogits[np.arange(B), targets[:, t]] -= 1
        dlogits /= B * T
        top = record["outputs"][-1][t + 1]
        if masks is not None and masks[-1] is not None:
            top = top * masks[-1][:, min(t, masks[-1].shape[1] - 1)]
        grads["head.W_hy"] += top.T @ dlogits
        grads["head.b_y"] += dlogits.sum(axis=0)
        dx = dlogits @ params["head.W_hy"].T
        for l in range(len(layers) - 1, -1, -1):
            if masks is not None and masks[l] is not None:
                dx = dx * masks[l][:, min(t, masks[l].shape[1] - 1)]
            dx, dstates[l] = c.reference_step_back(layers[l], record["saved"][l][t], dx, dstates[l], layer_grads[l])
    for l in range(len(layers)):  # the gradients so far are w.r.t. the masked matrices
        if record["weight_masks"] is not None and record["weight_masks"][l] is not None:
            grads[f"rnn.{l}.{c.recurrent_weight}"] *= record["weight_masks"][l]
    if record["input_mask"] is not None:
        W_in = f"rnn.0.{c.input_weight}"
        grads[W_in] *= _input_mask_rows(record["input_mask"], len(grads[W_in]))
    return grads, dstates
