"""A model as an ONNX graph of one step: read a character per stream, return the next
character's logits and the new states. For onnxruntime and any other ONNX runtime.

    inputs   char    int64 [B]          the characters read (ids into the vocabulary)
             h       float [L, B, H]    each layer's state (zeros to start a text)
             c       float [L, B, H]    the LSTM's cell state (LSTM only)
    outputs  logits  float [B, V]       the next character's logits (softmax: probabilities)
             h_out   float [L, B, H]    the states to feed back as h (and c_out as c)

Built from plain operators (Gather, MatMul, Add, Split, Sigmoid, Tanh), the cell's equations as
charnn's reference step writes them (charnn/nn/cells), rather than ONNX's RNN / LSTM / GRU
operators, whose gate orders and bias conventions differ from charnn's. Layer 0's one-hot
product x W is a row lookup: Gather. The vocabulary and the config are in the model's
metadata_props (keys "vocab" and "config", JSON). Opset 17.
"""

from __future__ import annotations

import json

import numpy as np

from charnn import __version__, hints
from charnn.config import to_dict
from charnn.errors import CharnnError
from charnn.nn import cells, model
from charnn.training.checkpoint import Checkpoint

OPSET = 17


def _onnx():
    try:
        import onnx
    except ImportError:
        raise CharnnError(f"ONNX export needs the onnx package: {hints.install('onnx')}") from None
    return onnx


class _Graph:
    """Nodes and initializers, with fresh names for intermediate values."""

    def __init__(self, onnx, dtype: str):
        self.onnx, self.h, self.dtype = onnx, onnx.helper, dtype
        self.nodes, self.inits, self.count, self.named = [], [], 0, {}

    def op(self, kind: str, *inputs: str, outputs: int = 1, **attrs) -> str | list[str]:
        names = [f"{kind.lower()}_{self.count}_{k}" for k in range(outputs)]
        self.count += 1
        self.nodes.append(self.h.make_node(kind, list(inputs), names, **attrs))
        return names[0] if outputs == 1 else names

    def const(self, name: str, value: np.ndarray) -> str:
        """An initializer (once per name); float ones stored in the export's dtype and cast to float32
        for the arithmetic."""
        if name not in self.named:
            if value.dtype.kind != "f":
                self.inits.append(self.onnx.numpy_helper.from_array(value, name))
                self.named[name] = name
            else:
                self.inits.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(value, self.dtype), name))
                self.named[name] = name if self.dtype == "float32" else self.op("Cast", name, to=self.onnx.TensorProto.FLOAT)
        return self.named[name]


def _layer(g: _Graph, c, p: dict, layer: int, x: str, h: str, cs: str | None, H: int) -> tuple[str, str | None]:
    """One layer's step: (its output, the LSTM's new cell state)."""
    idx = g.const(f"layer_{layer}", np.array(layer, np.int64))
    h_prev = g.op("Gather", h, idx, axis=0)
    W_in, b_in = g.const(f"rnn.{layer}.{c.input_weight}", p[c.input_weight]), g.const(f"rnn.{layer}.{c.input_bias}", p[c.input_bias])
    xa = g.op("Add", g.op("Gather", W_in, x, axis=0) if layer == 0 else g.op("MatMul", x, W_in), b_in)
    ha = g.op("MatMul", h_prev, g.const(f"rnn.{layer}.{c.recurrent_weight}", p[c.recurrent_weight]))
    if c.name == "rnn":
        return g.op("Tanh", g.op("Add", xa, ha)), None
    sizes = g.const(f"split_{c.gates}", np.full(c.gates, H, np.int64))
    if c.name == "lstm":
        i, f, gg, o = g.op("Split", g.op("Add", xa, ha), sizes, axis=1, outputs=4)
        c_prev = g.op("Gather", cs, idx, axis=0)
        c_new = g.op("Add", g.op("Mul", g.op("Sigmoid", f), c_prev), g.op("Mul", g.op("Sigmoid", i), g.op("Tanh", gg)))
        return g.op("Mul", g.op("Sigmoid", o), g.op("Tanh", c_new)), c_new
    ha = g.op("Add", ha, g.const(f"rnn.{layer}.b_h", p["b_h"]))  # gru: n = tanh(xa_n + r * (h W_hn + b_hn))
    xr, xz, xn = g.op("Split", xa, sizes, axis=1, outputs=3)
    hr, hz, hn = g.op("Split", ha, sizes, axis=1, outputs=3)
    r, z = g.op("Sigmoid", g.op("Add", xr, hr)), g.op("Sigmoid", g.op("Add", xz, hz))
    n = g.op("Tanh", g.op("Add", xn, g.op("Mul", r, hn)))
    one = g.const("one", np.array(1.0, np.float32))
    return g.op("Add", g.op("Mul", g.op("Sub", one, z), n), g.op("Mul", z, h_prev)), None


def build(ckpt: Checkpoint, dtype: str = "float32") -> bytes:
    """The serialized ONNX model of `ckpt`'s step (checked by onnx.checker)."""
    onnx = _onnx()
    cell = ckpt.cell
    if cell == "mlp":
        raise CharnnError("the mlp cell exports to safetensors only (onnx, web and hf need a recurrent cell: rnn, lstm "
                          "or gru); use --format safetensors")
    c, params = cells.get(cell), ckpt.params
    L, H, V = model.num_layers_of(params), params["head.W_hy"].shape[0], params["head.W_hy"].shape[1]
    g, T, make = _Graph(onnx, dtype), onnx.TensorProto, onnx.helper.make_tensor_value_info
    inputs = [make("char", T.INT64, ["batch"]), make("h", T.FLOAT, [L, "batch", H])]
    outputs = [make("logits", T.FLOAT, ["batch", V]), make("h_out", T.FLOAT, [L, "batch", H])]
    if cell == "lstm":
        inputs.append(make("c", T.FLOAT, [L, "batch", H]))
        outputs.append(make("c_out", T.FLOAT, [L, "batch", H]))
    axis0 = g.const("axis_0", np.array([0], np.int64))
    x, new_h, new_c = "char", [], []
    for layer in range(L):
        x, c_new = _layer(g, c, model.layer_params(params, layer), layer, x, "h", "c" if cell == "lstm" else None, H)
        new_h.append(g.op("Unsqueeze", x, axis0))
        if c_new is not None:
            new_c.append(g.op("Unsqueeze", c_new, axis0))
    logits = g.op("Add", g.op("MatMul", x, g.const("head.W_hy", params["head.W_hy"])), g.const("head.b_y", params["head.b_y"]))
    g.nodes.append(onnx.helper.make_node("Identity", [logits], ["logits"]))
    g.nodes.append(onnx.helper.make_node("Concat", new_h, ["h_out"], axis=0))
    if new_c:
        g.nodes.append(onnx.helper.make_node("Concat", new_c, ["c_out"], axis=0))
    graph = onnx.helper.make_graph(g.nodes, f"charnn_{cell}_step", inputs, outputs, g.inits)
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                   producer_name="charnn", producer_version=__version__)
    onnx.helper.set_model_props(proto, {"vocab": json.dumps(ckpt.vocab_chars, ensure_ascii=False),
                                        "config": json.dumps(to_dict(ckpt.config), ensure_ascii=False),
                                        "encoding": ckpt.config.data.encoding})
    proto.ir_version = 8  # what opset 17 needs, no newer: older runtimes read the file too
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()
