"""The fast kernels stay vectorised: their compiled loops run packed float32 arithmetic, call no
libm or SVML function per element, and promote nothing to float64 (tests/asmcheck.py reads the
assembly). Two deliberately scalar kernels show that the check catches what it is for."""

import importlib.util
import platform

import numpy as np
import pytest

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                       reason="the fast kernels need Numba: pip install -e '.[fast]'"),
    pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="reads x86-64 assembly"),
]

F = np.float32
H, B, T, V = 64, 4, 3, 7


def arrays(*shapes):
    rng = np.random.default_rng(0)
    return tuple(rng.standard_normal(s).astype(F) for s in shapes)


def kernel_calls():
    """(kernel, arguments of the types charnn passes, whether it has a tanh) for every kernel with a hot loop."""
    from charnn.nn.fast import cell_kernels as K
    from charnn.nn.fast import chunk_kernels as KC
    from charnn.nn.fast.jit import tanh_array

    ids = np.random.default_rng(0).integers(0, V, (T, B))
    lstm_bwd = (0, *arrays((B, H), (B, H), (T, B, H), (T, B, 4 * H), (T + 1, B, H), (T, B, H), (T, B, 4 * H)))
    gru_bwd = (0, *arrays((B, H), (B, H), (T, B, H), (T, B, 2 * H), (T, B, H), (T, B, H), (T + 1, B, H)))
    elman_bwd = (0, *arrays((B, H), (T, B, H), (T + 1, B, H)))
    return [
        (K.lstm_fwd_step, (0, *arrays((B, 4 * H), (T, B, 4 * H), (T + 1, B, H), (T, B, H), (T + 1, B, H))), True),
        (K.lstm_fwd_step_ids, (0, *arrays((B, 4 * H), (V, 4 * H)), ids,
                               *arrays((T, B, 4 * H), (T + 1, B, H), (T, B, H), (T + 1, B, H))), True),
        (K.lstm_bwd_step, lstm_bwd, False),
        (K.lstm_bwd_step_acc, (*lstm_bwd, ids, *arrays((V, 4 * H), 4 * H)), False),
        (K.gru_fwd_step, (0, *arrays((B, 3 * H), 3 * H, (T, B, 3 * H), (T, B, 2 * H), (T, B, H), (T, B, H),
                                     (T + 1, B, H))), True),
        (K.gru_fwd_step_ids, (0, *arrays((B, 3 * H), 3 * H, (V, 3 * H)), ids,
                              *arrays((T, B, 2 * H), (T, B, H), (T, B, H), (T + 1, B, H))), True),
        (K.gru_bwd_step, (*gru_bwd, *arrays((T, B, 3 * H), (T, B, 3 * H))), False),
        (K.gru_bwd_step_acc, (*gru_bwd, *arrays((T, B, 3 * H)), ids, *arrays((V, 3 * H), 3 * H, H)), False),
        (K.elman_fwd_step, (0, *arrays((B, H), (T + 1, B, H))), True),
        (K.elman_fwd_step_ids, (0, *arrays((B, H), (V, H)), ids, *arrays((T + 1, B, H))), True),
        (K.elman_bwd_step, elman_bwd, False),
        (K.elman_bwd_step_acc, (*elman_bwd, ids, *arrays((V, H), H)), False),
        (KC.lstm_cell_vec, arrays(4 * H, 4 * H, H, H), True),
        (KC.gru_cell_vec, arrays(3 * H, 3 * H, 3 * H, H), True),
        (KC.elman_cell_vec, arrays(H, H, H), True),
        (KC.adam_update, (*arrays(1000, 1000, 1000), np.abs(*arrays(1000)),
                          *(F(x) for x in (1, 0, 1, 0.9, 0.1, 0.999, 0.001, 1.2, 1e-8, 1e-3))), False),
        (tanh_array, arrays(1000, 1000), True),
    ]


KERNELS = ["lstm_fwd_step", "lstm_fwd_step_ids", "lstm_bwd_step", "lstm_bwd_step_acc", "gru_fwd_step",
           "gru_fwd_step_ids", "gru_bwd_step", "gru_bwd_step_acc", "elman_fwd_step", "elman_fwd_step_ids",
           "elman_bwd_step", "elman_bwd_step_acc", "lstm_cell_vec", "gru_cell_vec", "elman_cell_vec", "adam_update",
           "tanh_array"]


# the compiled functions the check above does not read, and why
NOT_CHECKED = {"softmax_xent_rows": "its own test below (one float64 log per row, by design)",
               "choose_id": "float64 by design: NumPy's draw, once per sampled character",
               "transpose_into": "moves data, no arithmetic to pack",
               "tanh32": "inlined into every kernel with a tanh", "sigmoid32": "inlined likewise"}


def test_every_kernel_with_a_loop_is_checked():
    """Every public compiled function of the kernels' modules is read here or named in NOT_CHECKED
    (the private row helpers are inlined into the kernels that are), so a new one cannot go unread."""
    from numba.core.registry import CPUDispatcher

    from charnn.nn.fast import cell_kernels, chunk_kernels, jit

    compiled = {name for module in (cell_kernels, chunk_kernels, jit) for name, value in vars(module).items()
                if isinstance(value, CPUDispatcher) and value.__module__ == module.__name__
                and not name.startswith("_")}
    assert [fn.__name__ for fn, _, _ in kernel_calls()] == KERNELS
    assert compiled == set(KERNELS) | set(NOT_CHECKED)


@pytest.mark.parametrize("name", KERNELS)
def test_the_kernels_hot_loops_are_vectorised(name):
    import asmcheck

    fn, args, has_tanh = next(call for call in kernel_calls() if call[0].__name__ == name)
    found = asmcheck.problems(asmcheck.assembly(fn, args), needs_div=has_tanh)
    assert not found, f"{fn.__name__}: {'; '.join(found)}"


def test_the_heads_pass_is_vectorised_with_one_log_per_row():
    """softmax_xent_rows: its per-element loops packed; per row one float64 log (a call), by design."""
    import asmcheck
    from charnn.nn.fast.chunk_kernels import softmax_xent_rows

    z = np.abs(*arrays((8, V))) + F(0.1)
    asm = asmcheck.assembly(softmax_xent_rows, (z, np.zeros(8, np.int64), np.zeros(8), F(0.125), *arrays(V)))
    assert asmcheck.analyse(asm)["hot_loop_packed_ops"] >= 3


def test_the_check_catches_a_scalar_tanh_and_a_float64_literal():
    import asmcheck
    from numba import njit

    from charnn.nn.fast.jit import FASTMATH

    def tanh_per_element(t, tmp, h):  # np.tanh in the loop: a libm call per element (no SVML)
        for b in range(tmp.shape[0]):
            for j in range(tmp.shape[1]):
                h[t + 1, b, j] = np.tanh(h[t + 1, b, j] + tmp[b, j])

    def float64_literal(t, dprev, dh, h):  # 1.0 promotes the float32 loop to float64
        for b in range(dprev.shape[0]):
            for j in range(dprev.shape[1]):
                dh[t, b, j] = (dh[t, b, j] + dprev[b, j]) * (1.0 - h[t + 1, b, j] * h[t + 1, b, j])

    scalar = njit(fastmath=FASTMATH, error_model="numpy")(tanh_per_element)
    scalar(0, *arrays((B, H), (T + 1, B, H)))
    found = asmcheck.problems("\n".join(scalar.inspect_asm().values()), needs_div=True)
    assert any("tanh" in f for f in found) and any("not packed" in f for f in found), found
    promoting = njit(fastmath=FASTMATH, error_model="numpy")(float64_literal)
    promoting(0, *arrays((B, H), (T, B, H), (T + 1, B, H)))
    found = asmcheck.problems("\n".join(promoting.inspect_asm().values()), needs_div=False)
    assert any("float64" in f for f in found), found
