"""The model around the cells: input lookup, chunking, the loss, initialisation, and scratch memory."""

import numpy as np
import pytest

from charnn.nn import model
from charnn.nn.loss import softmax_cross_entropy
from charnn.errors import CharnnError
from charnn.data.vocab import one_hot
from charnn.nn.workspace import Workspace
from conftest import CELLS, GATED_CELLS, RECURRENT_CELLS, window

V, H, B = 5, 4, 3


def make_params(cell="rnn", num_layers=1, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = model.init_params(V, H, num_layers, init="normal", scale=0.5, rng=rng, dtype=dtype, cell=cell,
                               context=window(cell))
    for p in params.values():
        if p.ndim == 1:
            p += rng.normal(0, 0.3, p.shape).astype(dtype)
    return params


def random_chunk(T, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


def test_row_lookup_equals_one_hot_matmul():
    params = make_params()
    ids, _ = random_chunk(7)
    W = params["rnn.0.W_xh"]
    np.testing.assert_array_equal(W[ids], one_hot(ids, V) @ W)


@pytest.mark.parametrize("cell", CELLS)
def test_chunked_forward_equals_one_long_forward(cell):
    params = make_params(cell, 2)
    ids, targets = random_chunk(8)
    h0 = model.zero_state(params, B, cell)
    loss_long, last_long, _ = model.forward(params, ids, targets, h0, cell=cell)
    loss_a, mid, _ = model.forward(params, ids[:, :4], targets[:, :4], h0, cell=cell)
    loss_b, last_b, _ = model.forward(params, ids[:, 4:], targets[:, 4:], mid, cell=cell)
    assert (loss_a + loss_b) / 2 == pytest.approx(loss_long, rel=1e-12)
    for a, b in zip(last_long, last_b):
        np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_at_huge_logits(dtype):
    logits = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], dtype=dtype)
    loss, probs = softmax_cross_entropy(logits.copy(), np.array([1, 2]))
    assert np.isfinite(loss) and np.all(np.isfinite(probs))
    assert loss == pytest.approx(2e4 / 2, rel=1e-6)  # row 0 costs 2e4 nats, row 1 costs 0
    params = make_params()
    params["head.W_hy"] *= 1e4  # huge logits through the whole model
    ids, targets = random_chunk(3)
    loss, _, cache = model.forward(params, ids, targets, model.zero_state(params, B, "rnn"), cell="rnn")
    grads, _ = model.backward(params, cache)
    assert np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())


@pytest.mark.parametrize("cell", RECURRENT_CELLS)  # (what a window carries is characters, not floats)
def test_float32_is_the_default_and_kept_throughout(cell):
    params = model.init_params(V, H, 2, rng=np.random.default_rng(0), cell=cell)
    assert all(p.dtype == np.float32 for p in params.values())
    ids, targets = random_chunk(3)
    _, last, cache = model.forward(params, ids, targets, model.zero_state(params, B, cell), cell=cell)
    grads, _ = model.backward(params, cache)
    assert all(g.dtype == np.float32 for g in grads.values()) and last[0].dtype == np.float32


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
    assert model.zero_state(lstm, 3, "lstm")[0].shape == (3, 12)


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


# ---- scratch memory --------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_a_held_cache_is_never_overwritten_by_later_steps(cell):
    """A cache still held keeps its arrays: the workspace hands out only arrays given back to it."""
    params = make_params(cell, 2, dtype=np.float32)
    rng = np.random.default_rng(5)
    chunks = [(rng.integers(0, V, (B, 6)), rng.integers(0, V, (B, 6))) for _ in range(4)]
    h0 = model.zero_state(params, B, cell)
    ws = Workspace()
    _, _, held = model.forward(params, *chunks[0], h0, cell=cell, ws=ws)
    snapshot = [a.copy() for a in held.buffers]
    expected, _ = model.backward(params, held, ws)
    for ids, targets in chunks[1:]:  # same shapes: exactly what a workspace would reuse
        _, _, cache = model.forward(params, ids, targets, h0, cell=cell, ws=ws)
        model.backward(params, cache, ws)
        ws.release(cache)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(held.buffers, snapshot))  # bit for bit (a spare row may hold NaN)
    again, _ = model.backward(params, held, ws)
    for name in params:
        np.testing.assert_array_equal(again[name], expected[name], err_msg=name)


@pytest.mark.parametrize("cell", CELLS)
def test_released_arrays_are_reused_and_a_released_cache_refuses_backward(cell):
    params = make_params(cell, 1, dtype=np.float32)
    ids, targets = random_chunk(6)
    h0 = model.zero_state(params, B, cell)
    ws = Workspace()
    _, _, first = model.forward(params, ids, targets, h0, cell=cell, ws=ws)
    ws.release(first)
    with pytest.raises(ValueError, match="released"):
        model.backward(params, first, ws)
    pooled = {id(a) for free in ws._free.values() for a in free}
    _, _, second = model.forward(params, ids, targets, h0, cell=cell, ws=ws)
    assert {id(a) for a in second.buffers} <= pooled  # the same memory again, no new allocation


def test_without_a_workspace_forward_and_backward_allocate_anew():
    params = make_params()
    ids, targets = random_chunk(4)
    h0 = model.zero_state(params, B, "rnn")
    _, _, a = model.forward(params, ids, targets, h0, cell="rnn")
    _, _, b = model.forward(params, ids, targets, h0, cell="rnn")
    assert not any(np.shares_memory(x, y) for x in a.buffers for y in b.buffers)


@pytest.mark.parametrize("cell", GATED_CELLS)
def test_chrono_initialisation(cell):
    params = model.init_params(7, 500, 1, rng=np.random.default_rng(3), cell=cell, gate_init="chrono", chrono_max=50)
    if cell == "lstm":
        b_i, b_f = params["rnn.0.b"][:500], params["rnn.0.b"][500:1000]
        np.testing.assert_array_equal(b_i, -b_f)  # what is held long is written rarely
    else:
        b_f = params["rnn.0.b_x"][500:1000]  # the update gate z keeps the old state
    assert b_f.min() >= 0 and b_f.max() <= np.log(49) + 1e-6
    # log(U(1, 49)): the characteristic times e^b spread evenly over 1 .. 49 steps
    assert 20 < np.exp(b_f.astype(np.float64)).mean() < 30
    plain = model.init_params(7, 500, 1, rng=np.random.default_rng(3), cell=cell)
    for name in params:  # the matrices are drawn first, so only the gate biases differ
        if params[name].ndim == 2:
            np.testing.assert_array_equal(params[name], plain[name])
