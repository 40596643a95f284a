"""The cell contract, one test for every cell: layer forward and backward, the sampling step, the
step Jacobian and the values a report shows (charnn/cells/base.py defines the contract)."""

import numpy as np
import pytest

from charnn.nn import cells
from charnn.nn.workspace import FRESH
from gradcheck import numerical_grad, rel_error

B, H = 3, 4
CELLS = list(cells.CELLS)


def rows(xa):
    """The input part as Cell.forward takes it: a spare row 0, then one row per step (a fresh copy)."""
    return np.concatenate([np.zeros_like(xa[:1]), xa])


def layer(cell, fan_in=5, seed=0):
    """One layer's parameters with nonzero biases, and a random input part and state."""
    c = cells.get(cell)
    rng = np.random.default_rng(seed)
    p = {k: rng.normal(0, 0.5, s) for k, s in c.param_shapes(fan_in, H).items()}
    return c, p, rng


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T", [1, 5])
def test_layer_backward_with_random_upstream_gradients(cell, T):
    c, p, rng = layer(cell)
    xa = rng.normal(0, 0.7, (T, B, c.gates * H))
    state0 = rng.normal(0, 0.7, (B, c.state_width(H)))
    dh_out, dlast = rng.normal(size=(T, B, H)), rng.normal(size=(B, c.state_width(H)))

    def objective():  # <dh_out, h[1:]> + <dlast, last>: any upstream gradient
        h, last, _ = c.forward(rows(xa), state0, p, FRESH)
        return np.sum(dh_out * h[1:]) + np.sum(dlast * last)

    _, _, cache = c.forward(rows(xa), state0, p, FRESH)
    dxa, grads, dstate0 = c.backward(dh_out.copy(), cache, p, FRESH, dlast)
    assert rel_error(dxa, numerical_grad(objective, xa)) < 1e-6
    assert rel_error(dstate0, numerical_grad(objective, state0)) < 1e-6
    recurrent_side = set(p) - {c.input_weight, c.input_bias}
    assert set(grads) == recurrent_side
    for name in recurrent_side:
        assert rel_error(grads[name], numerical_grad(objective, p[name])) < 1e-6, name


@pytest.mark.parametrize("cell", CELLS)
def test_forward_matches_the_reference_step_by_step(cell):
    c, p, rng = layer(cell)
    T = 4
    x = rng.normal(size=(T, B, 5))
    state = rng.normal(0, 0.5, (B, c.state_width(H)))
    xa = x @ p[c.input_weight] + p[c.input_bias]
    h, last, _ = c.forward(rows(xa), state, p, FRESH)
    ref_step = c.reference_step
    for t in range(T):
        out, state = ref_step(p, x[t], state)[:2]
        np.testing.assert_allclose(h[t + 1], out, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(last, state, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T", [1, 4])
def test_backward_matches_the_reference_step_by_step(cell, T):
    """The fast backward over a layer against the reference's step_back run back through time, with
    random gradients arriving at every output and at the last state."""
    c, p, rng = layer(cell)
    x = rng.normal(size=(T, B, 5))
    state0 = rng.normal(0, 0.5, (B, c.state_width(H)))
    dh_out, dlast = rng.normal(size=(T, B, H)), rng.normal(size=(B, c.state_width(H)))
    xa = x @ p[c.input_weight] + p[c.input_bias]
    _, _, cache = c.forward(rows(xa), state0, p, FRESH)
    dxa, grads, dstate0 = c.backward(dh_out.copy(), cache, p, FRESH, dlast.copy())
    saved, state = [], state0
    for t in range(T):
        _, state, record = c.reference_step(p, x[t], state)
        saved.append(record)
    ref_grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx, dstate = np.zeros_like(x), dlast
    for t in range(T - 1, -1, -1):
        dx[t], dstate = c.reference_step_back(p, saved[t], dh_out[t], dstate, ref_grads)
    np.testing.assert_allclose(dstate0, dstate, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dxa.reshape(T * B, -1) @ p[c.input_weight].T, dx.reshape(T * B, -1), rtol=1e-10, atol=1e-13)
    for name in grads:  # the recurrent side; the input side's gradients are the model's (from dxa)
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-10, atol=1e-13, err_msg=name)
    np.testing.assert_allclose(np.einsum("tbi,tbk->ik", x, dxa), ref_grads[c.input_weight], rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("cell", CELLS)
def test_one_step_for_sampling_equals_forward(cell):
    c, p, rng = layer(cell)
    xa = rng.normal(0, 0.7, (6, B, c.gates * H))
    state0 = rng.normal(0, 0.7, (B, c.state_width(H)))
    h, last, _ = c.forward(rows(xa), state0, p, FRESH)
    state = state0
    for t in range(6):
        out, state = c.step(xa[t], state, p)
        np.testing.assert_allclose(out, h[t + 1], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(state, last, rtol=1e-12, atol=1e-15)
    one, _ = c.step(xa[0, 0], state0[0], p)  # a single stream: 1-D vectors
    np.testing.assert_allclose(one, h[1, 0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cell", CELLS)
def test_jacobian_product_equals_the_step_jacobian(cell):
    c, p, rng = layer(cell)
    T = 3
    xa = rng.normal(0, 0.7, (T, B, c.gates * H))
    state0 = rng.normal(0, 0.7, (B, c.state_width(H)))
    _, _, cache = c.forward(rows(xa), state0, p, FRESH)
    states = [state0]
    for t in range(T):
        states.append(c.step(xa[t], states[-1], p)[1])
    w = c.state_width(H)
    if w == 0:  # the mlp carries no state through its steps: nothing to multiply
        assert c.jacobian_product(np.zeros((B, H, 0)), 1, cache, p).shape == (B, H, 0)
        return
    M = rng.normal(size=(B, H, w))
    for t in range(1, T + 1):
        got = c.jacobian_product(M, t, cache, p)
        for b in range(B):  # J_t[i, j] = d state_t[i] / d state_{t-1}[j], by central differences
            prev = states[t - 1][b].copy()
            step = lambda: c.step(xa[t - 1, b], prev, p)[1]
            J = np.stack([numerical_grad(lambda: step()[i], prev) for i in range(w)])
            np.testing.assert_allclose(got[b], M[b] @ J, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("cell", CELLS)
def test_values_a_report_shows(cell):
    c, p, rng = layer(cell)
    xa = rng.normal(0, 0.7, (4, B, c.gates * H))
    h, _, cache = c.forward(rows(xa), rng.normal(0, 0.5, (B, c.state_width(H))), p, FRESH)
    units = c.unit_values(cache)
    assert units.shape == (4, B, H) and np.all(np.abs(units) <= 1)
    if cell == "rnn":
        np.testing.assert_array_equal(units, h[1:])
    gates = c.gate_values(cache)
    assert tuple(gates) == c.gate_names and all(g.shape == (4, B, H) for g in gates.values())
    for name, g in gates.items():
        low = 0 if name in c.sigmoid_gates else -1  # sigmoid gates in (0, 1); tanh-activated candidates in (-1, 1)
        assert np.all((g >= low) & (g <= 1)), name


@pytest.mark.parametrize("cell", CELLS)
def test_a_registered_cell_states_what_callers_need(cell):
    """The attributes callers read instead of a cell's name hold together."""
    c = cells.get(cell)
    assert c.name == cell
    shapes = c.param_shapes(5, H)
    assert {c.input_weight, c.input_bias} <= set(shapes) and shapes[c.input_weight] == (5, c.gates * H)
    assert c.recurrent == (c.recurrent_weight is not None) == (c.state_width(H) > 0)
    if c.recurrent_weight is not None:
        assert shapes[c.recurrent_weight][0] == H  # it multiplies the previous output (a matrix, or a diagonal)
        rng = np.random.default_rng(0)
        radius, largest = c.recurrent_spectrum({k: rng.normal(size=s) for k, s in shapes.items()})
        assert largest > 0 and (radius is None or radius <= largest + 1e-9)
    assert not (c.windowed and c.recurrent)  # a window's characters ride in the slot a state would use
    assert set(c.sigmoid_gates) <= set(c.gate_names) and (c.memory_gate is None or c.memory_gate in c.gate_names)
    assert isinstance(c.memory_advice, str) and c.memory_advice


def test_the_config_accepts_exactly_the_registered_cells(tmp_path):
    from charnn.errors import CharnnError
    from charnn.settings import from_dict

    for cell in CELLS:
        model = {"cell": cell, **({"context": 3} if cells.get(cell).windowed else {})}
        assert from_dict({"data": {"text": "abc"}, "model": model, "run": {"name": "x"}}).model.cell == cell
    with pytest.raises(CharnnError, match="model.cell: 'elman' is not one of " + ", ".join(CELLS)):
        from_dict({"data": {"text": "abc"}, "model": {"cell": "elman"}, "run": {"name": "x"}})
