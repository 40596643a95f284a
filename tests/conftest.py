import textwrap
from pathlib import Path

import pytest

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


@pytest.fixture
def cli(capsys):
    """Run the command line in this process: cli("sample", "--seed", "h") -> (exit code, stdout, stderr)."""
    from charnn.cli.app import main

    def run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run
