import textwrap
from pathlib import Path

import numpy as np
import pytest

from charnn.nn import cells, model

# Every cell test iterates the registry: a cell added to charnn/nn/cells is tested by adding it.
CELLS = list(cells.CELLS)
RECURRENT_CELLS = [name for name, c in cells.CELLS.items() if c.recurrent]  # a state carried through time
GATED_CELLS = [name for name, c in cells.CELLS.items() if c.gate_names]
WINDOW = 3  # characters a windowed cell (the mlp) reads in the tests


def window(cell: str) -> int:
    """model.context a test gives a cell: a few characters for a windowed cell, else 1."""
    return WINDOW if cells.get(cell).windowed else 1


def random_carry(params: dict, batch_size: int, cell: str, rng: np.random.Generator, scale: float = 0.5) -> list:
    """A random carried state of the right kind per layer: normals for a cell's state, valid
    characters (id + 1 in 0..V) for what a window carries."""
    V = params["head.W_hy"].shape[1]
    return [rng.integers(0, V + 1, s.shape) if s.dtype.kind == "i" else rng.normal(0, scale, s.shape)
            for s in model.zero_state(params, batch_size, cell)]

CORPUS = "the cat sat on the mat. the dog sat on the log. " * 8


@pytest.fixture
def write_config(tmp_path):
    """Write a YAML config into tmp_path (runs go to tmp_path/runs) and return its path."""

    def write(body: str = "", name: str = "exp.yaml", text: str = CORPUS) -> Path:
        (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
        default = f"""
        data:
          path: corpus.txt
          val_fraction: 0.1
        model:
          hidden_size: 12
        train:
          batch_size: 2
          seq_len: 8
          steps: 20
          lr: 0.01
        run:
          dir: {tmp_path / 'runs'}
          log_every: 1
          eval_every: 5
          checkpoint_every: 5
        """
        path = tmp_path / name
        path.write_text(textwrap.dedent(body) if body else textwrap.dedent(default), encoding="utf-8")
        return path

    return write


def one_line_error(err: str) -> bool:
    """stderr holds exactly one line, an `error: ...` (and no traceback)."""
    lines = [line for line in err.splitlines() if line.strip()]
    return len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err


def assert_one_line_error(err: str) -> None:
    assert one_line_error(err), err


def run(capsys, *argv):
    """Run the command line in this process: (exit code, stdout, stderr)."""
    from charnn.cli import main

    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli(capsys):
    """run() with capsys bound: cli("sample", "--seed", "h") -> (exit code, stdout, stderr)."""
    return lambda *argv: run(capsys, *argv)
