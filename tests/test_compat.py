"""Checkpoints written by earlier versions still load and give the same results (tests/fixtures/README.md)."""

import json
from pathlib import Path

import pytest

from charnn.cli.app import main

FIXTURES = Path(__file__).parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "v1_expected.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_format_1_checkpoints_evaluate_and_sample_as_they_did(cell, capsys):
    ckpt = FIXTURES / f"v1-{cell}.npz"
    assert main(["eval", str(FIXTURES / "eval_text.txt"), "-c", str(ckpt), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result.pop("checkpoint") == str(ckpt)
    # floats that pass through BLAS may differ in the last bits where OpenBLAS picks another kernel
    # (OPENBLAS_CORETYPE, another CPU): compared to 1e-9 relative; counts and texts exactly
    expected = EXPECTED[cell]["eval"]
    assert set(result) == set(expected) and result["chars"] == expected["chars"]
    for key in ("nats_per_char", "bits_per_char", "perplexity"):
        assert result[key] == pytest.approx(expected[key], rel=1e-9, abs=0)
    assert main(["sample", "-c", str(ckpt), "--seed", "The ", "-n", "40", "--greedy"]) == 0
    assert capsys.readouterr().out == EXPECTED[cell]["sample_greedy"]
    assert main(["sample", "-c", str(ckpt), "--seed", "The ", "-n", "40", "--rng-seed", "7"]) == 0
    assert capsys.readouterr().out == EXPECTED[cell]["sample_rng7"]
