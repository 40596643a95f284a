"""LSTM and GRU layers: forward against PyTorch's equations step by step, backward against finite differences."""

import numpy as np
import pytest

from charnn import cells
from gradcheck import numerical_grad, rel_error

B, H = 3, 4


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_lstm_forward_matches_the_equations():
    rng = np.random.default_rng(0)
    T = 4
    xa, W_h = rng.normal(size=(T, B, 4 * H)), rng.normal(0, 0.5, (H, 4 * H))
    state0 = rng.normal(size=(B, 2 * H))
    h_all, last, _ = cells.lstm_layer_forward(xa, state0, W_h)
    h, c = state0[:, :H], state0[:, H:]
    for t in range(T):
        a = xa[t] + h @ W_h
        i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sigmoid(a[:, 3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        np.testing.assert_allclose(h_all[t + 1], h, rtol=1e-12)
    np.testing.assert_allclose(last, np.concatenate([h, c], axis=1), rtol=1e-12)


def test_gru_forward_matches_the_equations():
    rng = np.random.default_rng(1)
    T = 4
    xa, W_h, b_h = rng.normal(size=(T, B, 3 * H)), rng.normal(0, 0.5, (H, 3 * H)), rng.normal(size=3 * H)
    h = rng.normal(size=(B, H))
    h_all, last, _ = cells.gru_layer_forward(xa, h, W_h, b_h)
    for t in range(T):
        ha = h @ W_h + b_h
        r = sigmoid(xa[t, :, :H] + ha[:, :H])
        z = sigmoid(xa[t, :, H : 2 * H] + ha[:, H : 2 * H])
        n = np.tanh(xa[t, :, 2 * H :] + r * ha[:, 2 * H :])
        h = (1 - z) * n + z * h
        np.testing.assert_allclose(h_all[t + 1], h, rtol=1e-12)
    np.testing.assert_allclose(last, h, rtol=1e-12)


@pytest.mark.parametrize("T", [1, 5])
def test_lstm_backward_with_random_upstream_gradient(T):
    rng = np.random.default_rng(2)
    xa, W_h = rng.normal(0, 0.7, (T, B, 4 * H)), rng.normal(0, 0.5, (H, 4 * H))
    state0 = rng.normal(0, 0.7, (B, 2 * H))
    dh_out, dlast = rng.normal(size=(T, B, H)), rng.normal(size=(B, 2 * H))

    def objective():
        h_all, last, _ = cells.lstm_layer_forward(xa, state0, W_h)
        return np.sum(dh_out * h_all[1:]) + np.sum(dlast * last)

    _, _, cache = cells.lstm_layer_forward(xa, state0, W_h)
    dxa, dW_h, dstate0 = cells.lstm_layer_backward(dh_out, cache, W_h, dlast)
    assert rel_error(dxa, numerical_grad(objective, xa)) < 1e-6
    assert rel_error(dW_h, numerical_grad(objective, W_h)) < 1e-6
    assert rel_error(dstate0, numerical_grad(objective, state0)) < 1e-6


@pytest.mark.parametrize("T", [1, 5])
def test_gru_backward_with_random_upstream_gradient(T):
    rng = np.random.default_rng(3)
    xa, W_h, b_h = rng.normal(0, 0.7, (T, B, 3 * H)), rng.normal(0, 0.5, (H, 3 * H)), rng.normal(0, 0.5, 3 * H)
    state0 = rng.normal(0, 0.7, (B, H))
    dh_out, dlast = rng.normal(size=(T, B, H)), rng.normal(size=(B, H))

    def objective():
        h_all, last, _ = cells.gru_layer_forward(xa, state0, W_h, b_h)
        return np.sum(dh_out * h_all[1:]) + np.sum(dlast * last)

    _, _, cache = cells.gru_layer_forward(xa, state0, W_h, b_h)
    dxa, dW_h, db_h, dstate0 = cells.gru_layer_backward(dh_out, cache, W_h, dlast)
    assert rel_error(dxa, numerical_grad(objective, xa)) < 1e-6
    assert rel_error(dW_h, numerical_grad(objective, W_h)) < 1e-6
    assert rel_error(db_h, numerical_grad(objective, b_h)) < 1e-6
    assert rel_error(dstate0, numerical_grad(objective, state0)) < 1e-6


# ---- the whole model with gated cells -------------------------------------------------------

from charnn import model  # noqa: E402

V = 5


def make_params(cell, num_layers, seed=0):
    rng = np.random.default_rng(seed)
    params = model.init_params(V, H, num_layers, init="normal", scale=0.5, rng=rng, dtype=np.float64, cell=cell)
    for name, p in params.items():  # nonzero biases, so their gradients are checked too
        if p.ndim == 1:
            p += rng.normal(0, 0.3, p.shape)
    return params


def naive_step(cell, params, layer, x, state):
    p = lambda k: params[f"rnn.{layer}.{k}"]
    if cell == "lstm":
        h, c = state[:, :H], state[:, H:]
        a = x @ p("W_x") + h @ p("W_h") + p("b")
        i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), np.tanh(a[:, 2 * H : 3 * H]), sigmoid(a[:, 3 * H :])
        c = f * c + i * g
        h = o * np.tanh(c)
        return h, np.concatenate([h, c], axis=1)
    xa, ha = x @ p("W_x") + p("b_x"), state @ p("W_h") + p("b_h")
    r, z = sigmoid(xa[:, :H] + ha[:, :H]), sigmoid(xa[:, H : 2 * H] + ha[:, H : 2 * H])
    n = np.tanh(xa[:, 2 * H :] + r * ha[:, 2 * H :])
    h = (1 - z) * n + z * state
    return h, h


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_model_forward_matches_a_naive_loop(cell, num_layers):
    params = make_params(cell, num_layers)
    rng = np.random.default_rng(1)
    T = 4
    ids, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    h0 = [rng.normal(0, 0.5, s.shape) for s in model.zero_state(params, B)]
    loss, last, _ = model.forward(params, ids, targets, h0)
    state, total = [s.copy() for s in h0], 0.0
    for t in range(T):
        x = np.eye(V)[ids[:, t]]
        for layer in range(num_layers):
            x, state[layer] = naive_step(cell, params, layer, x, state[layer])
        logits = x @ params["head.W_hy"] + params["head.b_y"]
        logp = logits - logits.max(1, keepdims=True)
        logp -= np.log(np.exp(logp).sum(1, keepdims=True))
        total -= logp[np.arange(B), targets[:, t]].sum()
    assert loss == pytest.approx(total / (B * T), rel=1e-12)
    for a, b in zip(last, state):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("T", [1, 4])
def test_model_backward_matches_finite_differences(cell, num_layers, T):
    params = make_params(cell, num_layers)
    rng = np.random.default_rng(2)
    ids, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    h0 = [rng.normal(0, 0.5, s.shape) for s in model.zero_state(params, B)]
    _, _, cache = model.forward(params, ids, targets, h0)
    grads, dh0 = model.backward(params, cache)
    loss = lambda: model.forward(params, ids, targets, h0)[0]
    for name, p in params.items():
        assert rel_error(grads[name], numerical_grad(loss, p)) < 1e-6, name
    for layer in range(num_layers):
        assert rel_error(dh0[layer], numerical_grad(loss, h0[layer])) < 1e-6


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chunked_forward_equals_one_long_forward(cell):
    params = make_params(cell, 2)
    rng = np.random.default_rng(3)
    ids, targets = rng.integers(0, V, (B, 8)), rng.integers(0, V, (B, 8))
    h0 = model.zero_state(params, B)
    loss, last, _ = model.forward(params, ids, targets, h0)
    la, mid, _ = model.forward(params, ids[:, :4], targets[:, :4], h0)
    lb, end, _ = model.forward(params, ids[:, 4:], targets[:, 4:], mid)
    assert (la + lb) / 2 == pytest.approx(loss, rel=1e-12)
    for a, b in zip(last, end):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_held_cache_survives_later_steps(cell):
    """The big arrays come from a reuse pool: one still held by a cache must never be handed out again."""
    params = make_params(cell, 2)
    rng = np.random.default_rng(5)
    chunks = [(rng.integers(0, V, (B, 6)), rng.integers(0, V, (B, 6))) for _ in range(4)]
    h0 = model.zero_state(params, B)
    _, _, held = model.forward(params, *chunks[0], h0)
    expected, _ = model.backward(params, held)
    for ids, targets in chunks[1:]:  # same shapes: exactly what the pool would reuse
        _, _, cache = model.forward(params, ids, targets, h0)
        model.backward(params, cache)
        del cache
    again, _ = model.backward(params, held)
    for name in params:
        np.testing.assert_array_equal(again[name], expected[name], err_msg=name)


def test_lstm_forward_leaves_its_input_alone_unless_asked():
    rng = np.random.default_rng(6)
    xa, W_h, state0 = rng.normal(size=(3, B, 4 * H)), rng.normal(size=(H, 4 * H)), np.zeros((B, 2 * H))
    kept = xa.copy()
    h_all, _, _ = cells.lstm_layer_forward(xa, state0, W_h)
    np.testing.assert_array_equal(xa, kept)
    h_over, _, cache = cells.lstm_layer_forward(xa, state0, W_h, overwrite_input=True)
    np.testing.assert_array_equal(h_over, h_all)
    assert np.shares_memory(cache.gates, xa)


def test_init_of_gated_cells():
    rng = np.random.default_rng(4)
    lstm = model.init_params(7, 6, 1, init="orthogonal", rng=rng, cell="lstm")
    assert lstm["rnn.0.W_h"].shape == (6, 24) and lstm["rnn.0.W_x"].shape == (7, 24)
    np.testing.assert_array_equal(lstm["rnn.0.b"][6:12], 1.0)  # forget gate open
    assert not lstm["rnn.0.b"][:6].any() and not lstm["rnn.0.b"][12:].any()
    block = lstm["rnn.0.W_h"][:, 12:18].astype(np.float64)
    np.testing.assert_allclose(block @ block.T, np.eye(6), atol=1e-6)
    gru = model.init_params(7, 6, 2, rng=rng, cell="gru")
    assert set(gru) == {"rnn.0.W_x", "rnn.0.W_h", "rnn.0.b_x", "rnn.0.b_h", "rnn.1.W_x", "rnn.1.W_h",
                        "rnn.1.b_x", "rnn.1.b_h", "head.W_hy", "head.b_y"}
    assert model.cell_of(gru) == "gru" and model.cell_of(lstm) == "lstm"
    assert model.zero_state(lstm, 3)[0].shape == (3, 12)
