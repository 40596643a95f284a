"""The cells, looked up by the config's model.cell: the one place a cell is named.

Adding a cell: write charnn/nn/cells/<name>.py with a class implementing `Cell` (base.py:
its fast forward and backward, and its reference step written from the equations) and add a
line to CELLS below. That is all: the config accepts the name, and every cell test in the
suite iterates this registry, holding the new cell's kernels to its reference and to finite
differences.
"""

from __future__ import annotations

from charnn.nn.cells.base import Cell
from charnn.nn.cells.elman import Elman
from charnn.nn.cells.gru import GRU
from charnn.nn.cells.lstm import LSTM
from charnn.nn.cells.mlp import MLP

CELLS: dict[str, Cell] = {"rnn": Elman(), "lstm": LSTM(), "gru": GRU(), "mlp": MLP()}


def get(name: str) -> Cell:
    """The cell for a model.cell value (the config has already checked it is one of CELLS)."""
    return CELLS[name]
