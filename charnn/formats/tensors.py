"""charnn's parameters under the names and layouts torch's modules use, and back.

torch.nn.RNN / LSTM / GRU keep, per layer k, weight_ih_l{k} (gates*H, in), weight_hh_l{k}
(gates*H, H), bias_ih_l{k} and bias_hh_l{k} (gates*H,), in the same gate orders as charnn
(LSTM i, f, g, o; GRU r, z, n, with n = tanh(x W_in + b_in + r * (h W_hn + b_hn)), as charnn's
GRU). Row-vector charnn multiplies x W; torch multiplies W x: every matrix is transposed. The
Elman and LSTM cells have one bias, exported as bias_ih with bias_hh zero (reading back adds
the two, so a torch-trained model's biases load too). nn.Linear(H, V) is the head. The mlp
cell's layers are nn.Linear modules: mlp.{l}.weight, mlp.{l}.bias.
"""

from __future__ import annotations

import numpy as np

from charnn.errors import CharnnError
from charnn.nn import cells, model

def _other_bias(c) -> str | None:
    """The cell's bias on the recurrent part (the GRU's b_h), exported as bias_hh."""
    rest = [k for k in c.param_shapes(1, 1) if k not in (c.input_weight, c.input_bias, c.recurrent_weight)]
    return rest[0] if rest else None


def shapes(cell: str, vocab_size: int, hidden_size: int, num_layers: int, context: int = 1) -> dict[str, tuple]:
    """Exported name -> shape, in the order the file holds them (from model.param_shapes, mapped
    on zero-byte stand-ins: a hostile header's sizes allocate nothing)."""
    stand_ins = {k: np.broadcast_to(np.zeros((), np.float32), s)
                 for k, s in model.param_shapes(vocab_size, hidden_size, num_layers, cell, context).items()}
    return {k: v.shape for k, v in _mapped(stand_ins, cell).items()}


def to_torch(params: model.Params, cell: str) -> dict[str, np.ndarray]:
    """charnn's parameters (checkpoint keys) as torch-named, torch-shaped C-contiguous arrays."""
    return {k: np.ascontiguousarray(v) for k, v in _mapped(params, cell).items()}


def _mapped(params: model.Params, cell: str) -> dict[str, np.ndarray]:
    c = cells.get(cell)
    out: dict[str, np.ndarray] = {}
    for layer in range(model.num_layers_of(params)):
        p = model.layer_params(params, layer)
        if cell == "mlp":
            out[f"mlp.{layer}.weight"], out[f"mlp.{layer}.bias"] = p["W_x"].T, p["b"]
            continue
        other = _other_bias(c)
        out[f"rnn.weight_ih_l{layer}"] = p[c.input_weight].T
        out[f"rnn.weight_hh_l{layer}"] = p[c.recurrent_weight].T
        out[f"rnn.bias_ih_l{layer}"] = p[c.input_bias]
        out[f"rnn.bias_hh_l{layer}"] = p[other] if other else np.broadcast_to(np.zeros((), p[c.input_bias].dtype), p[c.input_bias].shape)
    out["head.weight"], out["head.bias"] = params["head.W_hy"].T, params["head.b_y"]
    return out


def from_torch(tensors: dict[str, np.ndarray], cell: str, num_layers: int) -> model.Params:
    """The inverse of to_torch (checkpoint keys, charnn's layouts); `tensors` must hold exactly
    the names `shapes` lists (the caller checks them)."""
    c = cells.get(cell)
    params: model.Params = {}
    for layer in range(num_layers):
        key = f"rnn.{layer}."
        if cell == "mlp":
            params[key + "W_x"], params[key + "b"] = tensors[f"mlp.{layer}.weight"].T, tensors[f"mlp.{layer}.bias"]
            continue
        other = _other_bias(c)
        params[key + c.input_weight] = tensors[f"rnn.weight_ih_l{layer}"].T
        params[key + c.recurrent_weight] = tensors[f"rnn.weight_hh_l{layer}"].T
        bias_hh = tensors[f"rnn.bias_hh_l{layer}"]
        if other:
            params[key + c.input_bias], params[key + other] = tensors[f"rnn.bias_ih_l{layer}"], bias_hh
        else:  # x + 0 == x exactly: an export of charnn's own model reads back bit for bit
            params[key + c.input_bias] = tensors[f"rnn.bias_ih_l{layer}"] + bias_hh
    params["head.W_hy"], params["head.b_y"] = tensors["head.weight"].T, tensors["head.bias"]
    ordered = model.param_shapes(tensors["head.weight"].shape[0], tensors["head.weight"].shape[1], num_layers, cell,
                                 _context(tensors, cell))
    missing = set(ordered) - set(params)
    if missing:
        raise CharnnError(f"exported tensors do not hold {sorted(missing)[0]}")
    return {k: np.ascontiguousarray(params[k]) for k in ordered}


def _context(tensors: dict[str, np.ndarray], cell: str) -> int:
    if cell != "mlp":
        return 1
    return tensors["mlp.0.weight"].shape[1] // tensors["head.weight"].shape[0]
