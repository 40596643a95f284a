"""The interface every cell implements, and the defaults a cell may keep.

A cell is one module holding one class; the registry (charnn/nn/cells/__init__.py) maps the
config's `model.cell` to an instance, and nothing outside this package asks which cell it
holds: callers read the attributes below. Letters: T steps, B streams, H units per layer,
k gate blocks (Elman 1, LSTM 4, GRU 3), w the width of the carried state (H, 2H for the
LSTM's [h | c], 0 for a cell without recurrence). Arrays are time-major; `p` is one layer's
parameters by short name (the checkpoint key without its "rnn.{l}." prefix).

The model computes a layer's input part for all steps at once, xa_t = x_t W_in + b_in (one
GEMM, or at layer 0 the input encoder's row lookups, charnn/nn/encoders.py), and the cell runs
the recurrence over it. The model then turns the cell's dxa into the gradients of W_in and
b_in and of the layer's input.

Buffer ownership, the one rule for workspace arrays (charnn/nn/workspace.py):
- forward is handed `xa` (taken from the workspace): it returns it in its cache's `buffers`
  if it keeps it, or gives it back itself; every other array it takes goes into `buffers`.
- backward is handed `dh`: it may overwrite it and return it as dxa, or give it back; the
  returned dxa is the caller's to give back. dh is not used by the caller after the call.

Each cell also carries its specification: `reference_step` and `reference_step_back`, one
character at a time, written straight from the equations (charnn/nn/reference.py runs them;
the tests hold the fast forward and backward to them).
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
    recurrent_weight: str | None  # W_rec (H, kH), multiplied by the previous output; None without recurrence
    gate_names: tuple[str, ...]  # the gates gate_values reports (none for the Elman cell)
    sigmoid_gates: tuple[str, ...]  # those that are sigmoids in (0, 1), which can saturate shut or open
    recurrent: bool  # carries a state through time: gradients flow back through it (inspect-gradients)
    windowed: bool  # reads a window of model.context characters at once instead of one (no recurrence)
    memory_gate: str | None  # the gate whose running product is memory's direct path (the LSTM's f), or None
    memory_advice: str  # what to try when the measured memory is short

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
        """Run T steps over xa (T+1, B, kH), whose rows 1..T hold the input part and row 0 is free
        (the cell may write into xa and keep it, as the module docstring's rule says).
        Returns h (T+1, B, H) with h[0] the initial output, the last state (B, w) as a fresh
        array, and a cache for backward whose `buffers` it owns."""

    def backward(self, dh: np.ndarray, cache: Any, p: dict, ws: Workspace, dlast: np.ndarray | None = None,
                 trace: dict | None = None) -> tuple[np.ndarray, dict, np.ndarray]:
        """dh (T, B, H): the gradient reaching h[1:] from outside the recurrence (the cell's to
        overwrite or give back); dlast: an extra gradient on the last state. Returns (dxa (T, B, kH),
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

    def recurrent_spectrum(self, p: dict) -> tuple[float | None, float]:
        """(the spectral radius of the recurrent weight, None where it is not square; its largest
        singular value): what inspect-gradients reports beside the measured decay."""

    def recurrent_grad_norms(self, h_prev: np.ndarray, da: np.ndarray) -> np.ndarray:
        """(T, N): the norm of each step's term of the gradient of the recurrent weight, from the
        previous outputs h_prev (T, N, H) and the recurrent pre-activation's gradients da (T, N, kH)."""

    def gate_values(self, cache: Any) -> dict[str, np.ndarray]:
        """Gate name -> (T, B, H) activations (empty for the Elman cell)."""

    def reference_step(self, p: dict, x: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray, Any]:
        """The specification of one step, float64, from the equations: x (B, fan_in) the layer's input,
        state (B, w) -> (h (B, H), the new state, what reference_step_back needs)."""

    def reference_step_back(self, p: dict, saved: Any, dh: np.ndarray, dstate: np.ndarray,
                            grads: dict) -> tuple[np.ndarray, np.ndarray]:
        """Its exact backward: dh the gradient on h_t from outside the recurrence, dstate the
        gradient on the new state from step t+1; adds to `grads` (short names) and returns
        (dx, the gradient on the previous state)."""


class CellBase:
    """Defaults a cell may keep: it has a recurrence, reads one character at a time, its state
    is its output, its biases start at zero, and it has no gates for chrono to set."""

    gate_names: tuple[str, ...] = ()
    sigmoid_gates: tuple[str, ...] = ()
    recurrent = True
    windowed = False
    memory_gate: str | None = None
    # gated cells: their gates can learn to hold, given a window as long as the memory needed
    memory_advice = ("train longer, with a train.seq_len longer than the memory you need, "
                     "so the gates learn to hold")

    def init_biases(self, p: dict[str, np.ndarray], H: int) -> None:
        pass

    def chrono_biases(self, p: dict[str, np.ndarray], H: int, t_max: int, rng: np.random.Generator) -> None:
        raise ValueError(f"the {self.name} cell has no gates to initialise for chrono")

    def state_width(self, H: int) -> int:
        return H

    def recurrent_spectrum(self, p: dict) -> tuple[float | None, float]:
        W = p[self.recurrent_weight]  # (H, kH): square for one gate block
        radius = float(np.abs(np.linalg.eigvals(W)).max()) if W.shape[0] == W.shape[1] else None
        return radius, float(np.linalg.norm(W, 2))

    def recurrent_grad_norms(self, h_prev: np.ndarray, da: np.ndarray) -> np.ndarray:
        # a step's term of dW_rec is the outer product h_{t-1}^T da_t, whose Frobenius norm is the
        # product of the two vectors' norms (no (H, kH) matrix is formed)
        return np.linalg.norm(h_prev, axis=2) * np.linalg.norm(da, axis=2)


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def chrono_bias(H: int, t_max: int, rng: np.random.Generator) -> np.ndarray:
    """log(U(1, t_max - 1)) per unit: a gate sigmoid(b) that keeps a fraction 1 - 1/T per step,
    T about e^b, remembers for about T steps."""
    return np.log(rng.uniform(1.0, t_max - 1.0, H))


def column_scaled(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """M @ diag(v) for a batch: M (N, H, w) with its columns scaled per matrix by v (N, w)."""
    return M * v[:, None, :]
