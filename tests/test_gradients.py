"""inspect-gradients: each per-lag quantity against an independent finite-difference reference."""

import numpy as np
import pytest

from charnn import gradients, model
from charnn.errors import CharnnError
from charnn.vocab import Vocab

V, H, T = 6, 5, 7


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def naive_step(cell, params, layer, x, state, W_rec):
    """One step of one layer, written from the equations; state is h (or [h | c] for the LSTM)."""
    p = lambda k: params[f"rnn.{layer}.{k}"]
    if cell == "rnn":
        h = np.tanh(x @ p("W_xh") + state @ W_rec + p("b_h"))
        return h, h
    if cell == "lstm":
        h, c = state[:H], state[H:]
        a = x @ p("W_x") + h @ W_rec + p("b")
        i, f, g, o = sigmoid(a[:H]), sigmoid(a[H : 2 * H]), np.tanh(a[2 * H : 3 * H]), sigmoid(a[3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        return h, np.concatenate([h, c])
    xa, ha = x @ p("W_x") + p("b_x"), state @ W_rec + p("b_h")
    r, z = sigmoid(xa[:H] + ha[:H]), sigmoid(xa[H : 2 * H] + ha[H : 2 * H])
    n = np.tanh(xa[2 * H :] + r * ha[2 * H :])
    h = (1 - z) * n + z * state
    return h, h


def naive_run(params, ids, perturb=None):
    """Per-step loop over one window from a zero state, with optional hooks for the reference.

    perturb: (layer, t, kind, value): kind "state" adds value to h_t after it is computed;
    kind "W" uses the recurrent matrix + value in the step that produces h_t. Returns (l_T, h per layer).
    """
    cell = model.cell_of(params)
    rec = model.PARAM_NAMES[cell][2]
    L = model.num_layers_of(params)
    state = [np.zeros(2 * H if cell == "lstm" else H) for _ in range(L)]
    hs = [[np.zeros(H)] for _ in range(L)]
    for t in range(1, len(ids)):
        x = np.eye(V)[ids[t - 1]]
        for layer in range(L):
            W_rec = params[f"rnn.{layer}.{rec}"]
            if perturb and perturb[:3] == (layer, t, "W"):
                W_rec = W_rec + perturb[3]
            h, state[layer] = naive_step(cell, params, layer, x, state[layer], W_rec)
            if perturb and perturb[:3] == (layer, t, "state"):
                h = h + perturb[3]
                state[layer] = state[layer].copy()
                state[layer][:H] = h
            hs[layer].append(h)
            x = h
    logits = x @ params["head.W_hy"] + params["head.b_y"]
    z = logits - logits.max()
    return -(z[ids[-1]] - np.log(np.exp(z).sum())), hs


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


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_per_lag_quantities_match_finite_differences(cell, num_layers):
    rng = np.random.default_rng(0)
    params = model.init_params(V, H, num_layers, init="normal", scale=0.6, rng=rng, dtype=np.float64, cell=cell)
    for p in params.values():
        if p.ndim == 1:
            p += rng.normal(0, 0.3, p.shape)
    ids = rng.integers(0, V, T + 1)
    report = gradients.analyse(params, ids[None, :])
    for layer in range(num_layers):
        got = report.layers[layer]
        for k in range(T):
            t = T - k
            g = fd(lambda d: naive_run(params, ids, (layer, t, "state", d))[0], (H,))
            assert rel(got.dL_ds[k], np.linalg.norm(g)) < 1e-4, ("dL_ds", layer, k)
            # ds_T/ds_t: perturbing s_t moves s_T; its largest singular value
            jac = fd(lambda d: naive_run(params, ids, (layer, t, "state", d))[1][layer][T], (H,))
            assert rel(got.jacobian[k], np.linalg.norm(jac, 2)) < 1e-4, ("jacobian", layer, k)
            # the share of dl_T/dW_rec from the step producing s_t: perturb W_rec in that step only
            shape = params[f"rnn.{layer}.{model.PARAM_NAMES[cell][2]}"].shape
            dW = fd(lambda d: naive_run(params, ids, (layer, t, "W", d))[0], shape)
            assert rel(got.contribution[k], np.linalg.norm(dW)) < 1e-4 or (k == T - 1 and got.contribution[k] == 0)


def test_small_init_vanishes_and_large_init_explodes():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 30, (4, 41))
    small = model.init_params(30, 64, 1, init="normal", scale=0.01, rng=rng, dtype=np.float64)
    report = gradients.analyse(small, ids).layers[0]
    assert report.verdict == "vanishing" and report.horizon is not None and report.horizon < 10
    assert report.factor < 1
    large = model.init_params(30, 64, 1, init="normal", scale=1.0, rng=rng, dtype=np.float64)
    report = gradients.analyse(large, ids).layers[0]
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
    assert max(e for e in gradients.gradient_check(params, ids).values() if e is not None) < 1e-6
    real_backward = model.backward

    def wrong_backward(p, cache):
        grads, dh0 = real_backward(p, cache)
        grads["rnn.1.W_hh"] = grads["rnn.1.W_hh"] * 1.001
        return grads, dh0

    monkeypatch.setattr(model, "backward", wrong_backward)
    assert gradients.gradient_check(params, ids)["rnn.1.W_hh"] > 1e-4


def test_report_json_shape_and_finite_values():
    rng = np.random.default_rng(3)
    params = model.init_params(V, H, 2, rng=rng, dtype=np.float64)
    out = gradients.analyse(params, rng.integers(0, V, (3, 6)), clip_fraction=0.25).as_dict()
    assert [layer["layer"] for layer in out["layers"]] == [0, 1] and out["clip_fraction"] == 0.25
    keys = {"layer", "lag", "dL_ds", "jacobian", "contribution", "horizon", "factor", "verdict",
            "spectral_radius", "max_singular_value"}
    assert keys <= set(out["layers"][0])
    assert len(out["layers"][0]["lag"]) == len(out["layers"][0]["dL_ds"]) == 5
    assert set(out["params"]["rnn.0.W_hh"]) == {"grad_norm", "param_norm", "ratio"}


def test_bad_inputs():
    rng = np.random.default_rng(4)
    params = model.init_params(3, 4, 1, rng=rng, dtype=np.float64)
    vocab = Vocab(("a", "b", "c"))
    with pytest.raises(CharnnError, match="--steps must be >= 2"):
        gradients.inspect_model(params, vocab, steps=1, text="abcabc")
    with pytest.raises(CharnnError, match="fewer than --steps"):
        gradients.inspect_model(params, vocab, steps=10, text="abc")
    with pytest.raises(CharnnError, match="outside the model's vocabulary: 'z'"):
        gradients.inspect_model(params, vocab, steps=3, text="abzab")
    with pytest.raises(CharnnError, match="fewer than --steps"):
        gradients.inspect_model(params, vocab, steps=10, corpus_ids=np.zeros(5, int))


def test_lstm_reports_the_cell_state_path():
    rng = np.random.default_rng(5)
    params = model.init_params(V, 8, 1, rng=rng, dtype=np.float64, cell="lstm")
    ids = rng.integers(0, V, (2, 12))
    layer = gradients.analyse(params, ids).layers[0]
    assert layer.cell == "lstm" and layer.spectral_radius is None
    assert len(layer.dL_dc) == len(layer.cell_path) == 11 and layer.cell_path[0] == 1.0
    # forget gates start near sigmoid(1) ~ 0.73: the carousel decays, but slowly
    assert 0.1 < layer.cell_path[1] < 1 and all(a >= b for a, b in zip(layer.cell_path, layer.cell_path[1:]))
    _, _, cache = model.forward(params, ids[:, :-1], ids[:, 1:], model.zero_state(params, 2))
    f = cache.cell_caches[0].gates[..., 8:16]
    assert layer.cell_path[3] == pytest.approx(np.mean(np.prod(f[-3:], axis=0).max(axis=1)), rel=1e-12)
