"""The recurrent cells, looked up by the config's model.cell: the one place a cell is named.

Adding a cell: write charnn/cells/<name>.py with a class implementing `Cell` (cells/base.py),
add a line to CELLS below, and a reference implementation to charnn/reference.py (the tests
check every cell's fast kernels against it).
"""

from __future__ import annotations

from charnn.nn.cells.base import Cell
from charnn.nn.cells.elman import Elman
from charnn.nn.cells.gru import GRU
from charnn.nn.cells.lstm import LSTM
from charnn.nn.cells.mlp import MLP

CELLS: dict[str, Cell] = {"rnn": Elman(), "lstm": LSTM(), "gru": GRU(), "mlp": MLP()}
RECURRENT = ("rnn", "lstm", "gru")  # the cells with a recurrent matrix (weight drop, inspect-gradients)


def get(name: str) -> Cell:
    """The cell for a model.cell value (the config has already checked it is one of CELLS)."""
    return CELLS[name]
