"""One stream read a character at a time on the kernels: charnn.nn.sampling.Reader's steps, float32,
each layer's state kept in preallocated 1-D arrays and updated in place.

Per character and layer: the recurrent product as W_rec^T @ h on a contiguous transposed copy (for
one row OpenBLAS runs this orientation faster than h @ W_rec), layer 0's input part a row of
W_in + b_in, one fused cell kernel; then the head W_hy^T @ h + b_y. The same numbers as the NumPy
Reader's to float32 rounding (the kernels' tanh is within 3e-7 of NumPy's).
"""

from __future__ import annotations

import numpy as np

from charnn.nn import cells, model
from charnn.nn.fast import chunk_kernels as KC

F = np.float32


class FastLayers:
    """Every layer's weights as the steps read them, and its state; starts from `states`, the NumPy
    Reader's per-layer 1-D states ([h | c] for the LSTM)."""

    def __init__(self, params: model.Params, cell: str, states: list[np.ndarray]):
        c = cells.get(cell)
        self.cell, self.layers = cell, []
        step = {"lstm": KC.lstm_cell_vec, "gru": KC.gru_cell_vec, "rnn": KC.elman_cell_vec}[cell]
        for i, state in enumerate(states):
            p = model.layer_params(params, i)
            W = p[c.recurrent_weight]
            H = W.shape[0]
            h, ha = np.array(state[:H], F), np.empty(W.shape[1], F)
            # the cell kernel's arguments after the input part: (ha, c, h), (ha, b_h, h) or (ha, h)
            rest = {"lstm": (ha, np.array(state[H:], F), h), "gru": (ha, p.get("b_h"), h)}.get(cell, (ha, h))
            if i == 0:
                read_in = np.ascontiguousarray(p[c.input_weight] + p[c.input_bias])  # rows: one per character
            else:
                read_in = (np.ascontiguousarray(p[c.input_weight].T), p[c.input_bias], np.empty(W.shape[1], F))
            self.layers.append((read_in, np.ascontiguousarray(W.T), h, ha, step, rest))
        self.W_hy_T, self.b_y = np.ascontiguousarray(params["head.W_hy"].T), params["head.b_y"]

    def logits(self, char_id: int) -> np.ndarray:
        matmul = np.matmul
        table, W_T, x, ha, step, rest = self.layers[0]
        matmul(W_T, x, out=ha)
        step(table[char_id], *rest)
        for (W_in_T, b_in, xa), W_T, h, ha, step, rest in self.layers[1:]:
            matmul(W_in_T, x, out=xa)
            xa += b_in
            matmul(W_T, h, out=ha)
            step(xa, *rest)
            x = h
        out = matmul(self.W_hy_T, x)
        out += self.b_y
        return out

    def states(self) -> list[np.ndarray]:
        """The states as the NumPy Reader keeps them."""
        return [np.concatenate([h, rest[1]]) if self.cell == "lstm" else h.copy()
                for _, _, h, _, _, rest in self.layers]
