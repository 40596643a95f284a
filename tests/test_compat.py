"""Checkpoints written by earlier versions still load and give the same results (tests/fixtures/README.md)."""

import json
from pathlib import Path

import pytest

from charnn.cli import main

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "v1_expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_format_1_checkpoints_evaluate_and_sample_as_they_did(cell, capsys):
    ckpt = FIXTURES / f"v1-{cell}.npz"
    assert main(["eval", str(FIXTURES / "eval_text.txt"), "-c", str(ckpt), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == EXPECTED[cell]["eval"]
    assert main(["sample", "-c", str(ckpt), "--seed", "The ", "-n", "40", "--greedy"]) == 0
    assert capsys.readouterr().out == EXPECTED[cell]["sample_greedy"]
    assert main(["sample", "-c", str(ckpt), "--seed", "The ", "-n", "40", "--rng-seed", "7"]) == 0
    assert capsys.readouterr().out == EXPECTED[cell]["sample_rng7"]
