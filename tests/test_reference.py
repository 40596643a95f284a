"""The reference model is the specification: its backward against finite differences, and every
fast kernel (model.forward / model.backward over each cell) against it, in float64."""

import dataclasses

import numpy as np
import pytest

from charnn.nn import cells, model
from charnn.nn import reference
from conftest import CELLS, random_carry, window
from gradcheck import numerical_grad, rel_error

V, H, B = 5, 4, 3


def make_params(cell, num_layers, seed=0):
    rng = np.random.default_rng(seed)
    params = model.init_params(V, H, num_layers, init="normal", scale=0.5, rng=rng, dtype=np.float64, cell=cell,
                               context=window(cell))
    for p in params.values():  # nonzero biases, so their gradients are checked too
        if p.ndim == 1:
            p += rng.normal(0, 0.3, p.shape)
    return params


def make_chunk(cell, params, T, seed=1):
    rng = np.random.default_rng(seed)
    ids, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    return ids, targets, random_carry(params, B, cell, rng)


def applicable(noise, cell):
    """The regularisers the cell can take: weight drop needs a recurrent matrix (the config says so too)."""
    return noise if cells.get(cell).recurrent_weight else dataclasses.replace(noise, weight_drop=0.0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers, T", [(1, 1), (1, 5), (2, 4)])
def test_reference_backward_matches_finite_differences(cell, num_layers, T):
    params = make_params(cell, num_layers)
    ids, targets, h0 = make_chunk(cell, params, T)
    grads, dh0 = reference.backward(params, reference.forward(params, cell, ids, targets, h0))
    loss = lambda: reference.forward(params, cell, ids, targets, h0)["loss"]
    for name, p in params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < 1e-6, name
    for layer in range(num_layers):
        assert rel_error(dh0[layer], numerical_grad(loss, h0[layer])) < 1e-6


NOISES = {
    "none": model.NO_NOISE,
    "dropout": model.Noise(dropout=0.4),
    "locked dropout": model.Noise(dropout=0.4, locked=True),
    "weight drop": model.Noise(weight_drop=0.3),
    "input dropout": model.Noise(input_dropout=0.3),
    "all": model.Noise(dropout=0.3, locked=True, weight_drop=0.3, input_dropout=0.2),
}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers, T", [(1, 1), (2, 6)])
@pytest.mark.parametrize("noise", list(NOISES))
def test_fast_model_equals_the_reference(cell, num_layers, T, noise):
    params = make_params(cell, num_layers)
    ids, targets, h0 = make_chunk(cell, params, T)
    noise = applicable(NOISES[noise], cell)
    rng = np.random.default_rng(7) if noise.any else None
    loss, last, cache = model.forward(params, ids, targets, h0, cell=cell, noise=noise, rng=rng)
    grads, dh0 = model.backward(params, cache)
    masks = [None if m is None else m.transpose(1, 0, 2) for m in cache.masks]  # to batch-first
    if noise.dropout:
        assert any((m == 0).any() for m in masks) and all(m.shape[1] == (1 if noise.locked else T) for m in masks)
    if noise.weight_drop:
        assert all((m == 0).any() for m in cache.weight_masks)
    ref = reference.forward(params, cell, ids, targets, h0, masks=masks, weight_masks=cache.weight_masks,
                            input_mask=cache.input_mask)
    ref_grads, ref_dh0 = reference.backward(params, ref)
    assert loss == pytest.approx(ref["loss"], rel=1e-12)
    np.testing.assert_allclose(cache.probs.reshape(T, B, V).transpose(1, 0, 2), ref["probs"], rtol=1e-10)
    for a, b in zip(last, ref["last"]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    for layer in range(num_layers):
        np.testing.assert_allclose(cache.outputs[layer], np.stack(ref["outputs"][layer]), rtol=1e-10, atol=1e-14)
    for name in params:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-14, err_msg=name)
    for a, b in zip(dh0, ref_dh0):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-14)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("noise", ["none", "all"])
def test_fast_model_backward_matches_finite_differences(cell, noise):
    """With every regulariser on, the same seed draws the same masks in each call, so the loss is a
    fixed function of the parameters and its gradient is checked like any other."""
    params = make_params(cell, 2)
    ids, targets, h0 = make_chunk(cell, params, 3)
    noise = applicable(NOISES[noise], cell)
    rng = lambda: np.random.default_rng(9) if noise.any else None  # noqa: E731
    _, _, cache = model.forward(params, ids, targets, h0, cell=cell, noise=noise, rng=rng())
    grads, dh0 = model.backward(params, cache)
    loss = lambda: model.forward(params, ids, targets, h0, cell=cell, noise=noise, rng=rng())[0]
    for name, p in params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < 1e-6, name
    assert rel_error(dh0[1], numerical_grad(loss, h0[1])) < 1e-6


def test_hand_computed_elman_step():
    # V=2, H=1: s = tanh(W_xh[id] + h0 W_hh + b_h), logits = s W_hy + b_y
    params = {"rnn.0.W_xh": np.array([[0.5], [-1.0]]), "rnn.0.W_hh": np.array([[2.0]]), "rnn.0.b_h": np.array([0.1]),
              "head.W_hy": np.array([[1.0, -1.0]]), "head.b_y": np.array([0.0, 0.5])}
    s = np.tanh(0.5 + 0.3 * 2.0 + 0.1)  # id 0, h0 = 0.3
    logits = np.array([s, -s + 0.5])
    expected = -(logits[1] - np.log(np.exp(logits).sum()))
    ref = reference.forward(params, "rnn", np.array([[0]]), np.array([[1]]), [np.array([[0.3]])])
    assert ref["loss"] == pytest.approx(expected, rel=1e-14) and ref["last"][0][0, 0] == pytest.approx(s, rel=1e-14)
    loss, last, _ = model.forward(params, np.array([[0]]), np.array([[1]]), [np.array([[0.3]])], cell="rnn")
    assert loss == pytest.approx(expected, rel=1e-14) and last[0][0, 0] == pytest.approx(s, rel=1e-14)
