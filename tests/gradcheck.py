"""Finite-difference helpers shared by the gradient tests (float64)."""

import numpy as np


def rel_error(a, b, floor=1e-7):
    """Max elementwise relative error; entries smaller than `floor` are compared against it
    (an exact zero against finite-difference rounding of ~1e-14 is not an error)."""
    if np.size(a) == 0:  # e.g. the state of a cell that carries none
        return 0.0
    return np.max(np.abs(a - b) / np.maximum(floor, np.abs(a) + np.abs(b)))


def numerical_grad(f, x, eps=1e-3):
    """Fourth-order central differences of scalar f() w.r.t. every element of x (changed in
    place, restored): error ~eps^4, so eps can be large and rounding stays small."""
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        values = []
        for step in (-2, -1, 1, 2):
            x[i] = old + step * eps
            values.append(f())
        x[i] = old
        grad[i] = (values[0] - 8 * values[1] + 8 * values[2] - values[3]) / (12 * eps)
    return grad
