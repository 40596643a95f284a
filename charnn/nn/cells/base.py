"""The interface every recurrent cell implements.

A cell is one module holding one class; the registry (charnn/cells/__init__.py) maps the
config's `model.cell` to an instance, and nothing else in charnn asks which cell it holds.
Letters: T steps, B streams, H units per layer, k gate blocks (Elman 1, LSTM 4, GRU 3), w the
width of the carried state (H, or 2H for the LSTM's [h | c]). Arrays are time-major; `p` is
one layer's parameters by short name (the checkpoint key without its "rnn.{l}." prefix).

The model computes a layer's input part for all steps at once, xa_t = x_t W_in + b_in (one
GEMM, or a row lookup at layer 0), and the cell runs the recurrence over it. The model then
turns the cell's dxa into the gradients of W_in and b_in and of the layer's input.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from charnn.nn.workspace import Workspace


class Cell(Protocol):
    name: str  # the value of model.cell
    gates: int  # k: blocks of H columns in W_in and W_rec
    input_weight: str  # W_in (fan_in, kH)
    input_bias: str  # b_in (kH,), added to the input part
    recurrent_weight: str  # W_rec (H, kH), multiplied by the previous output
    gate_names: tuple[str, ...]  # the gates gate_values reports (none for the Elman cell)

    def param_shapes(self, fan_in: int, H: int) -> dict[str, tuple[int, ...]]:
        """Short name -> shape of one layer's parameters, in initialisation order."""

    def init_biases(self, p: dict[str, np.ndarray], H: int) -> None:
        """Set the biases' starting values in place (they arrive as zeros)."""

    def chrono_biases(self, p: dict[str, np.ndarray], H: int, t_max: int, rng: np.random.Generator) -> None:
        """Chrono initialisation (Tallec and Ollivier 2018): gate biases that make each unit hold its
        state for a characteristic time drawn between 1 and t_max steps."""

    def state_width(self, H: int) -> int:
        """w: the width of the state carried from one chunk to the next."""

    def forward(self, xa: np.ndarray, state0: np.ndarray, p: dict, ws: Workspace) -> tuple[np.ndarray, np.ndarray, Any]:
        """Run T steps over xa (T+1, B, kH), whose rows 1..T hold the input part and row 0 is free:
        the cell may write into xa and keep it (the Elman cell turns it into its states in place).
        Returns h (T+1, B, H) with h[0] the initial output, the last state (B, w) as a fresh
        array, and a cache for backward whose `buffers` (from ws, xa among them if kept) it owns."""

    def backward(self, dh: np.ndarray, cache: Any, p: dict, ws: Workspace, dlast: np.ndarray | None = None,
                 trace: dict | None = None) -> tuple[np.ndarray, dict, np.ndarray]:
        """dh (T, B, H): the gradient reaching h[1:] from outside the recurrence (it may be
        overwritten); dlast: an extra gradient on the last state. Returns (dxa (T, B, kH),
        the gradients of the recurrent-side parameters by short name, dstate0 (B, w)).
        With a `trace` dict, also records "dh" (T, B, H), the total gradient on each output,
        "da" (T, B, kH), the gradient of the recurrent pre-activation (h_{t-1} W_rec), and,
        for the LSTM, "dc" on each cell state: what inspect-gradients measures."""

    def step(self, xa: np.ndarray, state: np.ndarray, p: dict) -> tuple[np.ndarray, np.ndarray]:
        """One step, for sampling: xa (B, kH), state (B, w) -> (h (B, H), next state)."""

    def jacobian_product(self, M: np.ndarray, t: int, cache: Any, p: dict) -> np.ndarray:
        """M @ J_t for a batch of matrices M (N, H, w), J_t = ds_t/ds_{t-1} (t = 1..T) acting on
        column vectors, without forming J_t."""

    def unit_values(self, cache: Any) -> np.ndarray:
        """(T, B, H): what each unit shows at each step (the output, or the LSTM's tanh(c))."""

    def gate_values(self, cache: Any) -> dict[str, np.ndarray]:
        """Gate name -> (T, B, H) activations (empty for the Elman cell)."""


class CellBase:
    """Defaults a cell may keep: it reads one character at a time (layer 0's input part is a row
    lookup), its state is its output, and its biases start at zero."""

    gate_names: tuple[str, ...] = ()

    def first_fan_in(self, vocab_size: int, context: int) -> int:
        """Rows of layer 0's input matrix (the MLP's covers `context` characters)."""
        return vocab_size

    def carried_width(self, H: int, layer: int, context: int) -> int:
        """Width of the state a layer carries to the next chunk."""
        return self.state_width(H)

    def input_part(self, p: dict, ids_tm: np.ndarray, state0: np.ndarray, out: np.ndarray):
        """Layer 0: out (T, B, kH) = W_in[ids] + b_in; returns the state the input itself carries
        (None: the recurrence decides). The row lookup equals one_hot(ids) @ W_in; adding the bias
        to the V rows first gives the same sums as adding it to all T*B looked-up rows, and
        mode="wrap" avoids the whole-output buffer of mode="raise" (4x slower; ids are checked)."""
        np.take(p[self.input_weight] + p[self.input_bias], ids_tm, axis=0, out=out, mode="wrap")
        return None

    def input_grads(self, dxa2: np.ndarray, ids_tm: np.ndarray, state0: np.ndarray, p: dict, ws: Workspace):
        """Layer 0: the gradient of W_in from dxa2 (T*B, kH): the sum of the rows of each id, written as
        one_hot(ids)^T @ dxa2, one GEMM, far faster than np.add.at (or sort + reduceat)."""
        one_hot_t = ws.take((p[self.input_weight].shape[0], ids_tm.size), dxa2.dtype)
        one_hot_t.fill(0)
        one_hot_t[ids_tm.reshape(-1), np.arange(ids_tm.size)] = 1
        grad = one_hot_t @ dxa2
        ws.give(one_hot_t)
        return grad

    def read_one(self, p: dict, table: np.ndarray, char_id: int, state: np.ndarray):
        """Sampling, layer 0: (the input part of one character, the state the input carries or None);
        `table` is W_in + b_in."""
        return table[char_id], None

    def init_biases(self, p: dict[str, np.ndarray], H: int) -> None:
        pass

    def chrono_biases(self, p: dict[str, np.ndarray], H: int, t_max: int, rng: np.random.Generator) -> None:
        raise ValueError(f"the {self.name} cell has no gates to initialise for chrono")

    def state_width(self, H: int) -> int:
        return H


def chrono_bias(H: int, t_max: int, rng: np.random.Generator) -> np.ndarray:
    """log(U(1, t_max - 1)) per unit: a gate sigmoid(b) that keeps a fraction 1 - 1/T per step,
    T about e^b, remembers for about T steps."""
    return np.log(rng.uniform(1.0, t_max - 1.0, H))


def column_scaled(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """M @ diag(v) for a batch: M (N, H, w) with its columns scaled per matrix by v (N, w)."""
    return M * v[:, None, :]
