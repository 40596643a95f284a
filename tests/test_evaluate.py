"""The exact evaluation and its batched estimate."""

import numpy as np
import pytest

from charnn.nn import model
from charnn.nn import reference
from charnn.nn.evaluate import evaluate_ids
from conftest import CELLS, window


@pytest.mark.parametrize("cell", CELLS)
def test_batched_evaluation_matches_the_exact_single_stream_value(cell):
    rng = np.random.default_rng(0)
    params = model.init_params(12, 16, 2, init="uniform", scale=0.2, rng=rng, dtype=np.float64, cell=cell,
                               context=window(cell))
    ids = rng.integers(0, 12, 3001)
    exact = evaluate_ids(params, ids, cell=cell).nats_per_char
    assert evaluate_ids(params, ids, cell=cell, streams=7, warmup=200).nats_per_char == pytest.approx(exact, rel=1e-6)


@pytest.mark.parametrize("cell", CELLS)
def test_the_exact_definition_is_the_reference_models_mean_loss(cell):
    """mean over i >= 1 of -ln p(c_i | c_<i), from a zero state: one reference pass over the text."""
    rng = np.random.default_rng(1)
    params = model.init_params(6, 8, 2, init="uniform", scale=0.3, rng=rng, dtype=np.float64, cell=cell,
                               context=window(cell))
    ids = rng.integers(0, 6, 600)  # longer than one chunk of 256: the state is carried across chunks
    zero = [np.zeros_like(s) for s in model.zero_state(params, 1, cell)]
    expected = reference.forward(params, cell, ids[None, :-1], ids[None, 1:], zero)["loss"]
    assert evaluate_ids(params, ids, cell=cell).nats_per_char == pytest.approx(expected, rel=1e-12)
