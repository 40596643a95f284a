"""LSTM and GRU layers: forward against PyTorch's equations step by step, backward against finite differences."""

import numpy as np
import pytest

from charnn import cells

B, H = 3, 4


def rel_error(a, b):
    return np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))


def numerical_grad(f, x, eps=1e-5):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        grad[i] = (fp - fm) / (2 * eps)
    return grad


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
