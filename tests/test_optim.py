"""Clipping, one hand-computed step of each optimizer, and the learning-rate schedules."""

import math

import numpy as np
import pytest

from charnn.nn.optim import OptimizerSpec, Schedule, apply_update, clip_gradients, global_norm, init_state


def one_step(name, p0=1.0, g=0.5, lr=0.1, **kw):
    spec = OptimizerSpec(optimizer=name, **kw)
    params = {"w.W": np.array([[p0]])}
    state = init_state(spec, params)
    apply_update(spec, params, {"w.W": np.array([[g]])}, state, lr)
    return params["w.W"][0, 0], state


def test_sgd_plain_and_momentum():
    p, state = one_step("sgd", momentum=0.0)
    assert p == pytest.approx(1.0 - 0.1 * 0.5)
    spec = OptimizerSpec("sgd", momentum=0.9)
    params, state = {"w.W": np.array([1.0])}, None
    state = init_state(spec, params)
    apply_update(spec, params, {"w.W": np.array([0.5])}, state, 0.1)  # v = 0.5
    apply_update(spec, params, {"w.W": np.array([0.5])}, state, 0.1)  # v = 0.9*0.5 + 0.5 = 0.95
    assert params["w.W"][0] == pytest.approx(1.0 - 0.05 - 0.095)


def test_sgd_nesterov():
    p, _ = one_step("sgd", momentum=0.9, nesterov=True)  # v = 0.5; step = g + 0.9 v = 0.95
    assert p == pytest.approx(1.0 - 0.1 * 0.95)


def test_adagrad():
    p, state = one_step("adagrad")  # g2 = 0.25 -> step = 0.1 * 0.5 / 0.5
    assert p == pytest.approx(1.0 - 0.1, rel=1e-7)
    assert state["g2.w.W"][0] == 0.25


def test_rmsprop():
    p, state = one_step("rmsprop")  # g2 = 0.05 * 0.25
    assert state["g2.w.W"][0] == pytest.approx(0.0125)
    assert p == pytest.approx(1.0 - 0.1 * 0.5 / (math.sqrt(0.0125) + 1e-8))


def test_adam_first_step_is_lr_times_sign():
    p, state = one_step("adam")  # bias-corrected m/sqrt(v) = g/|g| on step 1
    assert p == pytest.approx(1.0 - 0.1, rel=1e-7)
    assert state["m.w.W"][0] == pytest.approx(0.05) and state["v.w.W"][0] == pytest.approx(0.00025)
    assert int(state["t"]) == 1


@pytest.mark.parametrize("name, wd", [("adam", 0.0), ("adam", 0.05), ("adamw", 0.05)])
def test_adam_over_several_steps_follows_the_formula(name, wd):
    """Step 1 moves every weight by +-lr whatever the bias correction does; over several steps of
    changing gradients the moments, their bias correction and the (coupled or decoupled) weight
    decay are all checked against Adam's formula, written out here in float64."""
    rng = np.random.default_rng(0)
    spec = OptimizerSpec(name, beta1=0.9, beta2=0.99, eps=1e-8, weight_decay=wd)
    params = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    state = init_state(spec, params)
    expected = {k: v.copy() for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, 8):
        lr = 0.01 * t  # a changing rate, as a schedule gives
        grads = {k: rng.normal(size=v.shape) for k, v in params.items()}
        for k, p in expected.items():
            g = grads[k] + (wd * p if name == "adam" and p.ndim == 2 else 0)  # coupled L2 on matrices
            m[k] = 0.9 * m[k] + 0.1 * g
            v2[k] = 0.99 * v2[k] + 0.01 * g * g
            m_hat, v_hat = m[k] / (1 - 0.9**t), v2[k] / (1 - 0.99**t)
            if name == "adamw" and p.ndim == 2:
                p *= 1 - lr * wd  # decoupled
            p -= lr * m_hat / (np.sqrt(v_hat) + 1e-8)
        apply_update(spec, params, {k: g.copy() for k, g in grads.items()}, state, lr)
        for k in params:
            np.testing.assert_allclose(params[k], expected[k], rtol=1e-12, err_msg=f"{k} at step {t}")
    assert int(state["t"]) == 7


def test_adamw_decouples_weight_decay_and_adam_couples_it():
    p, _ = one_step("adamw", weight_decay=0.1)  # p * (1 - lr*wd) - lr * 1
    assert p == pytest.approx(1.0 * (1 - 0.01) - 0.1, rel=1e-7)
    p, _ = one_step("adam", weight_decay=0.1, g=0.0)  # coupled: g = 0 + 0.1 * 1 -> sign step
    assert p == pytest.approx(1.0 - 0.1, rel=1e-7)


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd"])
def test_weight_decay_applies_to_every_matrix_and_no_vector(name):
    spec = OptimizerSpec(name, weight_decay=0.5, momentum=0.0)
    params = {"any.name": np.ones((2, 2)), "another": np.ones(3)}  # decided by shape, not by name
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    apply_update(spec, params, zero, init_state(spec, params), 0.1)
    assert np.all(params["any.name"] < 1) and np.all(params["another"] == 1)


def test_spec_and_schedule_take_every_train_key_of_their_name():
    from charnn.config import TrainConfig
    from charnn.nn.optim import from_config

    t = TrainConfig(optimizer="sgd", momentum=0.5, nesterov=True, weight_decay=0.2, lr=0.3,
                    lr_schedule="step", warmup_steps=7, min_lr=0.01, decay_rate=0.25, decay_every=3)
    assert from_config(OptimizerSpec, t) == OptimizerSpec("sgd", momentum=0.5, nesterov=True, weight_decay=0.2)
    assert from_config(Schedule, t) == Schedule(0.3, "step", 7, 0.01, 0.25, 3)


def test_clip_by_norm_rescales_and_reports_pre_clip_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([4.0])}
    norm, clipped = clip_gradients(grads, 1.0, "norm")
    assert norm == pytest.approx(5.0) and clipped
    assert global_norm(grads) == pytest.approx(1.0)
    np.testing.assert_allclose(grads["a"], [0.6, 0.0])


def test_clip_by_norm_leaves_small_gradients_and_zero_means_off():
    grads = {"a": np.array([0.3, 0.4])}
    assert clip_gradients(grads, 1.0, "norm") == (pytest.approx(0.5), False)
    big = {"a": np.array([30.0, 40.0])}
    assert clip_gradients(big, 0, "norm") == (pytest.approx(50.0), False)
    np.testing.assert_array_equal(big["a"], [30.0, 40.0])


def test_clip_by_value():
    grads = {"a": np.array([-7.0, 2.0, 6.0])}
    norm, clipped = clip_gradients(grads, 5.0, "value")
    assert clipped and norm == pytest.approx(math.sqrt(89))
    np.testing.assert_array_equal(grads["a"], [-5.0, 2.0, 5.0])


def test_schedules():
    assert Schedule(1.0)(500, 0.5) == 1.0
    warm = Schedule(1.0, "constant", warmup_steps=4)
    assert [warm(s, 0) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    step = Schedule(1.0, "step", decay_rate=0.5, decay_every=10)
    assert [step(s, 0) for s in (0, 9, 10, 25)] == [1.0, 1.0, 0.5, 0.25]
    cos = Schedule(1.0, "cosine", min_lr=0.1)
    assert cos(0, 0.0) == pytest.approx(1.0) and cos(0, 0.5) == pytest.approx(0.55) and cos(0, 1.0) == pytest.approx(0.1)
