"""The plain reference model: the specification that charnn's fast kernels are tested against.

One character at a time, batch-first, float64, written straight from the equations (the
README's, and each cell's docstring). Nothing here is clever: explicit one-hot inputs,
one step function per cell and its backward beside it, Python loops over time and layers.
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


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


# ---- one step of each cell, and its backward ------------------------------------------------------
# step(p, x, state) -> (h, new state, saved values); step_back(p, saved, dh, dstate, g) adds to the
# gradients g and returns (dx, dstate_prev), where dh is the gradient on h_t from outside the
# recurrence and dstate the gradient on the new state from step t+1.


def elman_step(p, x, s):
    s_new = np.tanh(x @ p["W_xh"] + s @ p["W_hh"] + p["b_h"])
    return s_new, s_new, (x, s, s_new)


def elman_step_back(p, saved, dh, dstate, g):
    x, s, s_new = saved
    da = (dh + dstate) * (1 - s_new**2)  # through tanh
    g["W_xh"] += x.T @ da
    g["W_hh"] += s.T @ da
    g["b_h"] += da.sum(axis=0)
    return da @ p["W_xh"].T, da @ p["W_hh"].T


def lstm_step(p, x, state):
    H = state.shape[1] // 2
    h, c = state[:, :H], state[:, H:]
    a = x @ p["W_x"] + h @ p["W_h"] + p["b"]
    i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sigmoid(a[:, 3 * H :])
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, np.concatenate([h_new, c_new], axis=1), (x, h, c, i, f, g, o, c_new)


def lstm_step_back(p, saved, dh, dstate, grads):
    x, h, c, i, f, g, o, c_new = saved
    H = h.shape[1]
    dh = dh + dstate[:, :H]  # total gradient on h_t
    dc = dstate[:, H:] + dh * o * (1 - np.tanh(c_new) ** 2)  # total gradient on c_t
    da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g**2),
                         dh * np.tanh(c_new) * o * (1 - o)], axis=1)
    grads["W_x"] += x.T @ da
    grads["W_h"] += h.T @ da
    grads["b"] += da.sum(axis=0)
    return da @ p["W_x"].T, np.concatenate([da @ p["W_h"].T, dc * f], axis=1)


def gru_step(p, x, h):
    H = h.shape[1]
    xa, ha = x @ p["W_x"] + p["b_x"], h @ p["W_h"] + p["b_h"]
    r, z = sigmoid(xa[:, :H] + ha[:, :H]), sigmoid(xa[:, H : 2 * H] + ha[:, H : 2 * H])
    n = np.tanh(xa[:, 2 * H :] + r * ha[:, 2 * H :])
    h_new = (1 - z) * n + z * h
    return h_new, h_new, (x, h, ha, r, z, n)


def gru_step_back(p, saved, dh, dstate, grads):
    x, h, ha, r, z, n = saved
    H = h.shape[1]
    dh = dh + dstate
    dan = dh * (1 - z) * (1 - n**2)  # through n's tanh
    dar = dan * ha[:, 2 * H :] * r * (1 - r)
    daz = dh * (h - n) * z * (1 - z)
    dxa = np.concatenate([dar, daz, dan], axis=1)
    dha = np.concatenate([dar, daz, dan * r], axis=1)
    grads["W_x"] += x.T @ dxa
    grads["b_x"] += dxa.sum(axis=0)
    grads["W_h"] += h.T @ dha
    grads["b_h"] += dha.sum(axis=0)
    return dxa @ p["W_x"].T, dh * z + dha @ p["W_h"].T


def mlp_step(p, x, state):
    h = np.tanh(x @ p["W_x"] + p["b"])  # no recurrence: the state passes through untouched
    return h, state, (x, h)


def mlp_step_back(p, saved, dh, dstate, grads):
    x, h = saved
    da = dh * (1 - h**2)
    grads["W_x"] += x.T @ da
    grads["b"] += da.sum(axis=0)
    return da @ p["W_x"].T, np.zeros_like(dstate)


def mlp_context(history: np.ndarray, V: int) -> np.ndarray:
    """The MLP's layer-0 input: the one-hots of its last W characters concatenated, block j for the
    character j steps back; history (B, W) holds ids + 1, oldest first, 0 for "before the text"."""
    B, W = history.shape
    x = np.zeros((B, W * V))
    for j in range(W):
        c = history[:, W - 1 - j]
        rows = np.flatnonzero(c > 0)
        x[rows, j * V + c[rows] - 1] = 1
    return x


STEPS = {"rnn": (elman_step, elman_step_back), "lstm": (lstm_step, lstm_step_back), "gru": (gru_step, gru_step_back),
         "mlp": (mlp_step, mlp_step_back)}


# ---- the whole model -----------------------------------------------------------------------------


def _layers(params: dict) -> list[dict]:
    count = len({k.split(".")[1] for k in params if k.startswith("rnn.")})
    return [{k.split(".", 2)[2]: v for k, v in params.items() if k.startswith(f"rnn.{l}.")} for l in range(count)]


RECURRENT_WEIGHT = {"rnn": "W_hh", "lstm": "W_h", "gru": "W_h", "mlp": None}
INPUT_WEIGHT = {"rnn": "W_xh", "lstm": "W_x", "gru": "W_x", "mlp": "W_x"}


def _noisy_layers(params, cell, weight_masks, input_mask) -> list[dict]:
    """Each layer's parameters as the chunk sees them: W_rec * its DropConnect mask, layer 0's
    input rows * the character mask."""
    layers = _layers(params)
    for l, p in enumerate(layers):
        if weight_masks is not None and weight_masks[l] is not None:
            p[RECURRENT_WEIGHT[cell]] = p[RECURRENT_WEIGHT[cell]] * weight_masks[l]
        if l == 0 and input_mask is not None:  # (the MLP's input rows: one block of V per position back)
            p[INPUT_WEIGHT[cell]] = p[INPUT_WEIGHT[cell]] * np.tile(input_mask, len(p[INPUT_WEIGHT[cell]]) // len(input_mask))[:, None]
    return layers


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
    step = STEPS[cell][0]
    perturb = perturb or {}
    layers = _noisy_layers(params, cell, weight_masks, input_mask)
    B, T = ids.shape
    V = params["head.W_hy"].shape[1]
    states = [s.astype(np.float64) for s in state0]
    H = params["head.W_hy"].shape[0]
    outputs = [[s[:, :H]] for s in states]
    saved = [[None] * T for _ in layers]
    losses, probs = np.zeros((B, T)), np.zeros((B, T, V))
    for t in range(T):
        x = np.eye(V)[ids[:, t]]  # one-hot (B, V)
        if cell == "mlp":  # layer 0 sees its last W characters; its state is the W - 1 before this one
            history = np.concatenate([np.rint(states[0]).astype(int), ids[:, t : t + 1] + 1], axis=1)
            x, states[0] = mlp_context(history, V), history[:, 1:].astype(float)
        for l, p in enumerate(layers):
            W_key = RECURRENT_WEIGHT[cell]
            if (l, t + 1, "W") in perturb:
                p = dict(p, **{W_key: p[W_key] + perturb[(l, t + 1, "W")]})
            h, new_state, saved[l][t] = step(p, x, states[l])
            if not (cell == "mlp" and l == 0):
                states[l] = new_state
            if (l, t + 1, "state") in perturb:
                h = h + perturb[(l, t + 1, "state")]
                states[l] = np.concatenate([h, states[l][:, H:]], axis=1)
            outputs[l].append(h)
            x = h if masks is None or masks[l] is None else h * masks[l][:, min(t, masks[l].shape[1] - 1)]
        logits = x @ params["head.W_hy"] + params["head.b_y"]
        y = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[:, t] = y / y.sum(axis=1, keepdims=True)
        losses[:, t] = -np.log(probs[np.arange(B), t, targets[:, t]])
    return {"loss": losses.mean(), "losses": losses, "probs": probs, "outputs": outputs, "last": states,
            "saved": saved, "masks": masks, "ids": ids, "targets": targets, "cell": cell,
            "weight_masks": weight_masks, "input_mask": input_mask}


def backward(params, record):
    """(gradients of record's mean loss by parameter name, gradient on each layer's initial state)."""
    cell = record["cell"]
    step_back = STEPS[cell][1]
    layers = _noisy_layers(params, cell, record["weight_masks"], record["input_mask"])
    ids, targets, masks = record["ids"], record["targets"], record["masks"]
    B, T = ids.shape
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in params.items()}
    layer_grads = [{k.split(".", 2)[2]: grads[k] for k in grads if k.startswith(f"rnn.{l}.")} for l in range(len(layers))]
    dstates = [np.zeros_like(s) for s in record["last"]]  # the last state is not differentiated through
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
            dx, dstates[l] = step_back(layers[l], record["saved"][l][t], dx, dstates[l], layer_grads[l])
    for l in range(len(layers)):  # the gradients so far are w.r.t. the masked matrices
        if record["weight_masks"] is not None and record["weight_masks"][l] is not None:
            grads[f"rnn.{l}.{RECURRENT_WEIGHT[cell]}"] *= record["weight_masks"][l]
    if record["input_mask"] is not None:
        m = record["input_mask"]
        grads[f"rnn.0.{INPUT_WEIGHT[cell]}"] *= np.tile(m, len(grads[f"rnn.0.{INPUT_WEIGHT[cell]}"]) // len(m))[:, None]
    return grads, dstates
