"""inspect-gradients: each per-lag quantity against an independent finite-difference reference."""

import json

import numpy as np
import pytest

from charnn.nn import cells
from charnn.analysis import gradients
from charnn.nn import model
from charnn.nn import reference
from charnn.errors import CharnnError
from charnn.data.vocab import Vocab
from conftest import RECURRENT_CELLS

V, H, T = 6, 5, 7


def last_step(params, cell, ids, perturb=None):
    """(l_T, outputs per layer) of one window from a zero state, by the reference model (with its
    perturbation hooks: the output h_t of a layer, or the recurrent matrix in the step producing it)."""
    state0 = [np.zeros((1, cells.get(cell).state_width(H))) for _ in range(model.num_layers_of(params))]
    perturb = {perturb[:3]: perturb[3]} if perturb else None
    record = reference.forward(params, cell, ids[None, :-1], ids[None, 1:], state0, perturb=perturb)
    return record["losses"][0, -1], [[h[0] for h in layer] for layer in record["outputs"]]


def fd(f, shape, eps=1e-6):
    """Central differences of f(perturbation) at zero, for a vector- or scalar-valued f."""
    base = np.zeros(shape)
    cols = []
    for i in np.ndindex(shape):
        d = base.copy()
        d[i] = eps
        cols.append((np.asarray(f(d)) - np.asarray(f(-d))) / (2 * eps))
    return np.array(cols)


def rel(a, b):
    return abs(a - b) / max(abs(a) + abs(b), 1e-300)


@pytest.mark.parametrize("cell", RECURRENT_CELLS)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_per_lag_quantities_match_finite_differences(cell, num_layers):
    rng = np.random.default_rng(0)
    params = model.init_params(V, H, num_layers, init="normal", scale=0.6, rng=rng, dtype=np.float64, cell=cell)
    for p in params.values():
        if p.ndim == 1:
            p += rng.normal(0, 0.3, p.shape)
    ids = rng.integers(0, V, T + 1)
    report = gradients.analyse(params, ids[None, :], cell)
    for layer in range(num_layers):
        got = report.layers[layer]
        for k in range(T):
            t = T - k
            g = fd(lambda d: last_step(params, cell, ids, (layer, t, "state", d))[0], (H,))
            assert rel(got.dL_ds[k], np.linalg.norm(g)) < 1e-4, ("dL_ds", layer, k)
            # ds_T/ds_t: perturbing s_t moves s_T; its largest singular value
            jac = fd(lambda d: last_step(params, cell, ids, (layer, t, "state", d))[1][layer][T], (H,))
            assert rel(got.jacobian[k], np.linalg.norm(jac, 2)) < 1e-4, ("jacobian", layer, k)
            # the share of dl_T/dW_rec from the step producing s_t: perturb W_rec in that step only
            shape = params[f"rnn.{layer}.{cells.get(cell).recurrent_weight}"].shape
            dW = fd(lambda d: last_step(params, cell, ids, (layer, t, "W", d))[0], shape)
            assert rel(got.contribution[k], np.linalg.norm(dW)) < 1e-4 or (k == T - 1 and got.contribution[k] == 0)


def test_small_init_vanishes_and_large_init_explodes():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, (4, 41))
    small = model.init_params(30, 64, 1, init="normal", scale=0.01, rng=rng, dtype=np.float64)
    report = gradients.analyse(small, ids, "rnn").layers[0]
    assert report.verdict == "vanishing" and report.horizon is not None and report.horizon < 10
    assert report.factor < 1
    large = model.init_params(30, 64, 1, init="normal", scale=1.0, rng=rng, dtype=np.float64)
    report = gradients.analyse(large, ids, "rnn").layers[0]
    assert report.verdict == "exploding" and report.factor > 1 and report.horizon is None


def test_verdict_follows_the_numbers_not_the_configuration():
    decaying = 0.5 ** np.arange(30)
    assert gradients.verdict(gradients._horizon(decaying), gradients._fit_factor(decaying), decaying)[0] == "vanishing"
    growing = 1.5 ** np.arange(30)
    assert gradients.verdict(gradients._horizon(growing), gradients._fit_factor(growing), growing)[0] == "exploding"
    flat = 0.99 ** np.arange(30)
    assert gradients.verdict(gradients._horizon(flat), gradients._fit_factor(flat), flat)[0] == "healthy"
    overflow = np.array([1.0, 1e300, np.inf])
    assert gradients.verdict(None, gradients._fit_factor(overflow), overflow)[0] == "exploding"


def test_horizon_and_factor_on_a_known_curve():
    values = 0.1 ** np.arange(10)  # falls below 1e-3 of the first value at k = 4
    assert gradients._horizon(values) == 3
    assert gradients._fit_factor(values) == pytest.approx(0.1)
    assert gradients._horizon(np.ones(10)) is None


def test_gradient_check_passes_on_a_healthy_model_and_catches_a_wrong_backward(monkeypatch):
    rng = np.random.default_rng(2)
    params = model.init_params(V, 8, 2, init="uniform", scale=0.3, rng=rng, dtype=np.float32)
    ids = rng.integers(0, V, 12)
    assert max(e for e in gradients.gradient_check(params, ids, "rnn").values() if e is not None) < 1e-6
    real_backward = model.backward

    def wrong_backward(p, cache):
        grads, dh0 = real_backward(p, cache)
        grads["rnn.1.W_hh"] = grads["rnn.1.W_hh"] * 1.001
        return grads, dh0

    monkeypatch.setattr(model, "backward", wrong_backward)
    assert gradients.gradient_check(params, ids, "rnn")["rnn.1.W_hh"] > 1e-4


def test_report_json_shape_and_finite_values():
    rng = np.random.default_rng(3)
    params = model.init_params(V, H, 2, rng=rng, dtype=np.float64)
    out = gradients.analyse(params, rng.integers(0, V, (3, 6)), "rnn", clip_fraction=0.25).as_dict()
    assert [layer["layer"] for layer in out["layers"]] == [0, 1] and out["clip_fraction"] == 0.25
    keys = {"layer", "lag", "dL_ds", "jacobian", "contribution", "horizon", "factor", "verdict",
            "spectral_radius", "max_singular_value"}
    assert keys <= set(out["layers"][0])
    assert len(out["layers"][0]["lag"]) == len(out["layers"][0]["dL_ds"]) == 5
    numbers = [v for layer in out["layers"] for key in ("dL_ds", "jacobian", "contribution") for v in layer[key]]
    numbers += [layer[key] for layer in out["layers"] for key in ("factor", "spectral_radius", "max_singular_value")]
    numbers += [p[key] for p in out["params"].values() for key in ("grad_norm", "param_norm")]
    numbers += [p["ratio"] for p in out["params"].values() if p["param_norm"] > 0]
    assert all(isinstance(v, float) and np.isfinite(v) for v in numbers)
    assert all(p["ratio"] is None for p in out["params"].values() if p["param_norm"] == 0)  # zero biases
    assert json.loads(json.dumps(out)) == out  # plain JSON, nothing numpy inside
    assert set(out["params"]["rnn.0.W_hh"]) == {"grad_norm", "param_norm", "ratio"}


def test_bad_inputs():
    rng = np.random.default_rng(4)
    params = model.init_params(3, 4, 1, rng=rng, dtype=np.float64)
    vocab = Vocab(("a", "b", "c"))
    with pytest.raises(CharnnError, match="^steps must be >= 2"):  # the library names its parameter
        gradients.inspect_model(params, "rnn", vocab, steps=1, text="abcabc")
    with pytest.raises(CharnnError, match="fewer than steps"):
        gradients.inspect_model(params, "rnn", vocab, steps=10, text="abc")
    with pytest.raises(CharnnError, match="outside the model's vocabulary: 'z'"):
        gradients.inspect_model(params, "rnn", vocab, steps=3, text="abzab")
    with pytest.raises(CharnnError, match="fewer than steps"):
        gradients.inspect_model(params, "rnn", vocab, steps=10, corpus_ids=np.zeros(5, int))


def test_lstm_reports_the_cell_state_path():
    rng = np.random.default_rng(5)
    params = model.init_params(V, 8, 1, rng=rng, dtype=np.float64, cell="lstm")
    ids = rng.integers(0, V, (2, 12))
    layer = gradients.analyse(params, ids, "lstm").layers[0]
    assert layer.cell == "lstm" and layer.spectral_radius is None
    assert len(layer.dL_dc) == len(layer.cell_path) == 11 and layer.cell_path[0] == 1.0
    # forget gates start near sigmoid(1) ~ 0.73: the carousel decays, but slowly
    assert 0.1 < layer.cell_path[1] < 1 and all(a >= b for a, b in zip(layer.cell_path, layer.cell_path[1:]))
    _, _, cache = model.forward(params, ids[:, :-1], ids[:, 1:], model.zero_state(params, 2, "lstm"), cell="lstm")
    f = cache.cell_caches[0].gates[..., 8:16]
    assert layer.cell_path[3] == pytest.approx(np.mean(np.prod(f[-3:], axis=0).max(axis=1)), rel=1e-12)
