"""The model's maths: forward against a naive loop, backward against finite differences (float64)."""

import numpy as np
import pytest

from charnn import model
from charnn.errors import CharnnError
from charnn.vocab import one_hot
from gradcheck import numerical_grad, rel_error

V, H, B = 5, 4, 3


def make_params(num_layers=1, seed=0, scale=0.5, hidden=H, vocab=V):
    rng = np.random.default_rng(seed)
    return model.init_params(vocab, hidden, num_layers, init="normal", scale=scale, rng=rng, dtype=np.float64)


def naive_forward(params, ids, targets, h0):
    """Per-character loop with explicit one-hot inputs: the reference for forward."""
    L = model.num_layers_of(params)
    Bn, T = ids.shape
    Vn = params["head.W_hy"].shape[1]
    h = [s.copy() for s in h0]
    total = 0.0
    for t in range(T):
        x = one_hot(ids[:, t], Vn)
        for layer in range(L):
            p = lambda k: params[f"rnn.{layer}.{k}"]
            h[layer] = np.tanh(x @ p("W_xh") + h[layer] @ p("W_hh") + p("b_h"))
            x = h[layer]
        logits = x @ params["head.W_hy"] + params["head.b_y"]
        for b in range(Bn):
            z = logits[b] - logits[b].max()
            total += -(z[targets[b, t]] - np.log(np.exp(z).sum()))
    return total / (Bn * T), h


def random_chunk(T, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def random_state(num_layers, seed=2):
    rng = np.random.default_rng(seed)
    return [rng.uniform(-0.9, 0.9, (B, H)) for _ in range(num_layers)]


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("T", [1, 6])
def test_forward_matches_naive_loop(num_layers, T):
    params = make_params(num_layers)
    ids, targets = random_chunk(T)
    h0 = random_state(num_layers)
    loss, last, _ = model.forward(params, ids, targets, h0)
    ref_loss, ref_last = naive_forward(params, ids, targets, h0)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    for a, b in zip(last, ref_last):
        np.testing.assert_allclose(a, b, rtol=1e-12)


def test_row_lookup_equals_one_hot_matmul():
    params = make_params()
    ids, _ = random_chunk(7)
    W = params["rnn.0.W_xh"]
    np.testing.assert_array_equal(W[ids], one_hot(ids, V) @ W)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("T", [1, 5])
def test_backward_matches_finite_differences(num_layers, T):
    params = make_params(num_layers)
    ids, targets = random_chunk(T)
    h0 = random_state(num_layers)
    _, _, cache = model.forward(params, ids, targets, h0)
    grads, dh0 = model.backward(params, cache)
    loss = lambda: model.forward(params, ids, targets, h0)[0]
    for name, p in params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < 1e-6, name
    for layer in range(num_layers):
        assert rel_error(dh0[layer], numerical_grad(loss, h0[layer])) < 1e-6


@pytest.mark.parametrize("T", [1, 4])
def test_layer_backward_with_random_upstream_gradient(T):
    rng = np.random.default_rng(3)
    xw = rng.normal(0, 0.5, (T, B, H))  # unsaturated tanh keeps finite differences accurate
    h0 = rng.uniform(-0.9, 0.9, (B, H))
    W_hh = rng.normal(0, 0.5, (H, H))
    dS = rng.normal(size=(T, B, H))
    dh_last = rng.normal(size=(B, H))

    def objective():  # <dS, S[1:]> + <dh_last, S[T]>: any upstream gradient
        S = model.rnn_layer_forward(xw, h0, W_hh)
        return np.sum(dS * S[1:]) + np.sum(dh_last * S[-1])

    S = model.rnn_layer_forward(xw, h0, W_hh)
    dxw, dW_hh, dh0 = model.rnn_layer_backward(dS, S, W_hh, dh_last)
    assert rel_error(dxw, numerical_grad(objective, xw)) < 1e-6
    assert rel_error(dW_hh, numerical_grad(objective, W_hh)) < 1e-6
    assert rel_error(dh0, numerical_grad(objective, h0)) < 1e-6


def test_dropout_gradient_with_fixed_mask():
    params = make_params(2)
    ids, targets = random_chunk(4)
    h0 = random_state(2)

    def loss():  # the same seed draws the same masks each call
        return model.forward(params, ids, targets, h0, dropout=0.3, rng=np.random.default_rng(9))[0]

    _, _, cache = model.forward(params, ids, targets, h0, dropout=0.3, rng=np.random.default_rng(9))
    assert any(m is not None and (m == 0).any() for m in cache.masks)
    grads, _ = model.backward(params, cache)
    for name, p in params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < 1e-6, name


def test_hand_computed_single_step():
    # V=2, H=1: s = tanh(W_xh[id] + h0*W_hh + b), logits = s*W_hy + b_y
    params = {
        "rnn.0.W_xh": np.array([[0.5], [-1.0]]),
        "rnn.0.W_hh": np.array([[2.0]]),
        "rnn.0.b_h": np.array([0.1]),
        "head.W_hy": np.array([[1.0, -1.0]]),
        "head.b_y": np.array([0.0, 0.5]),
    }
    s = np.tanh(0.5 + 0.3 * 2.0 + 0.1)  # id 0, h0 = 0.3
    logits = np.array([s, -s + 0.5])
    expected = -(logits[1] - np.log(np.exp(logits).sum()))
    loss, last, _ = model.forward(params, np.array([[0]]), np.array([[1]]), [np.array([[0.3]])])
    assert loss == pytest.approx(expected, rel=1e-14)
    assert last[0][0, 0] == pytest.approx(s, rel=1e-14)


def test_chunked_forward_equals_one_long_forward():
    params = make_params(2)
    ids, targets = random_chunk(8)
    h0 = random_state(2)
    loss_long, last_long, _ = model.forward(params, ids, targets, h0)
    loss_a, mid, _ = model.forward(params, ids[:, :4], targets[:, :4], h0)
    loss_b, last_b, _ = model.forward(params, ids[:, 4:], targets[:, 4:], mid)
    assert (loss_a + loss_b) / 2 == pytest.approx(loss_long, rel=1e-12)
    for a, b in zip(last_long, last_b):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_at_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=dtype)
    loss, probs = model.softmax_cross_entropy(logits.copy(), np.array([1, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(probs))
    assert loss == pytest.approx(2e4 / 2, rel=1e-6)  # row 0 costs 2e4 nats, row 1 costs 0
    params = make_params()
    params["head.W_hy"] *= 1e4  # huge logits through the whole model
    ids, targets = random_chunk(3)
    loss, _, cache = model.forward(params, ids, targets, random_state(1))
    grads, _ = model.backward(params, cache)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


def test_float32_is_the_default_and_kept_throughout():
    params = model.init_params(V, H, 2, rng=np.random.default_rng(0))
    assert all(p.dtype == np.float32 for p in params.values())
    ids, targets = random_chunk(3)
    _, last, cache = model.forward(params, ids, targets, model.zero_state(params, B))
    grads, _ = model.backward(params, cache)
    assert all(g.dtype == np.float32 for g in grads.values())
    assert last[0].dtype == np.float32


@pytest.mark.parametrize("init", model.INITS)
def test_init_shapes_and_zero_biases(init):
    params = model.init_params(7, 6, 2, init=init, scale=0.1, rng=np.random.default_rng(0))
    assert {k: v.shape for k, v in params.items()} == model.param_shapes(7, 6, 2)
    assert not params["rnn.0.b_h"].any() and not params["head.b_y"].any()
    if init == "orthogonal":
        W = params["rnn.1.W_hh"].astype(np.float64)
        np.testing.assert_allclose(W @ W.T, np.eye(6), atol=1e-6)
    if init == "uniform":
        assert np.abs(params["rnn.0.W_xh"]).max() <= 0.1


def test_same_seed_same_params_different_seed_different():
    a = model.init_params(V, H, 2, rng=np.random.default_rng(5))
    b = model.init_params(V, H, 2, rng=np.random.default_rng(5))
    c = model.init_params(V, H, 2, rng=np.random.default_rng(6))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["rnn.0.W_hh"], c["rnn.0.W_hh"])


@pytest.mark.parametrize("bad", [dict(vocab_size=0), dict(hidden_size=0), dict(num_layers=0)])
def test_bad_sizes_are_project_errors(bad):
    kwargs = dict(vocab_size=3, hidden_size=4, num_layers=1) | bad
    with pytest.raises(CharnnError):
        model.param_shapes(**kwargs)


def test_nan_parameter_is_reported_by_name():
    params = make_params()
    params["rnn.0.W_hh"][0, 0] = np.nan
    with pytest.raises(CharnnError, match="rnn.0.W_hh"):
        model.check_finite(params)
