"""How the fast kernels are compiled: Numba's options, its on-disk cache, and the float32 tanh.

Compiled code is cached on disk, so only the first process on a machine compiles (seconds per
cell); later ones load it in a fraction of a second. Where (decided once, when this module is
imported, before any kernel is defined: Numba fixes a function's cache when it is decorated):

    NUMBA_CACHE_DIR set          Numba's own choice, that directory
    CHARNN_NUMBA_CACHE=numba     Numba's default locators (__pycache__ beside the source, else
                                 ~/.cache/numba; where neither is writable, defining the kernels fails)
    CHARNN_NUMBA_CACHE=off       no cache: every process compiles
    otherwise                    a folder per version of the kernels' source in CHARNN_NUMBA_CACHE or
                                 ~/.cache/charnn/numba; no cache (rather than Numba's import error)
                                 when it cannot be created and written

(The version folder is there because Numba checks only the source file of the function it loads:
a kernel would otherwise keep an inlined tanh32 from before an edit of this file.)

The kernels are serial (no parallel=True): the matrix products stay with NumPy's BLAS and its
threads, which the kernels never compete with.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numba
import numpy as np
from numba import njit
from numba.core import config as numba_config

F = np.float32


def _cache_dir() -> str | None:
    """The directory to cache in, "" for "leave Numba's choice alone", None for no cache."""
    choice = os.environ.get("CHARNN_NUMBA_CACHE", "")
    if numba_config.CACHE_DIR or choice == "numba":
        return ""
    if choice == "off":
        return None
    base = choice or os.path.join(os.path.expanduser("~"), ".cache", "charnn", "numba")
    path = os.path.join(base, _source_version())
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f".probe-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError:
        return None
    return path


def _source_version() -> str:
    """A short hash of the kernels' source files and the Numba version."""
    digest = hashlib.sha256(numba.__version__.encode())
    for path in sorted(Path(__file__).parent.glob("*kernels.py")) + [Path(__file__)]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


CACHE_DIR = _cache_dir()
CACHE = CACHE_DIR is not None

# fast-math without "no NaN / no inf": a NaN loss or gradient must still reach the trainer's guard
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}
OPTIONS = dict(fastmath=FASTMATH, nogil=True, error_model="numpy", boundscheck=False)
EXACT = dict(nogil=True, error_model="numpy", boundscheck=False)  # no fast-math: NumPy's roundings


def kernel(inline: bool = False, exact: bool = False):
    """@njit with the kernels' options, cached where CACHE_DIR says (set only while decorating, so
    other libraries' Numba caching is left as it was). exact: without fast-math (no FMA contraction),
    for kernels that must round as NumPy does; inline: folded into its callers, never called alone."""
    options = dict(EXACT if exact else OPTIONS, cache=CACHE and not inline)
    if inline:
        options["inline"] = "always"

    def decorate(fn):
        saved = numba_config.CACHE_DIR
        if CACHE_DIR:
            numba_config.CACHE_DIR = CACHE_DIR
        try:
            return njit(**options)(fn)
        finally:
            numba_config.CACHE_DIR = saved

    return decorate


# tanh as Eigen and XLA compute it in float32: x P(x^2) / Q(x^2), odd degree 13 over even degree 6.
# Only multiply, add, divide and compare, so LLVM vectorises it; np.tanh inside a compiled loop is a
# scalar libm call per element (Numba >= 0.62 links no SVML). Max abs error 2.9e-7 against float64
# tanh over every float32 in [0, 9], |tanh32| <= 1. The clamp is XLA's for FMA evaluation (Eigen's
# 7.9053 saturates at 0.99999976 with FMAs); below 4e-4, tanh(x) = x to float32 precision.
_CLAMP, _NCLAMP, _TINY = F(7.99881172180175781), F(-7.99881172180175781), F(0.0004)
_A1, _A3, _A5, _A7 = F(4.89352455891786e-03), F(6.37261928875436e-04), F(1.48572235717979e-05), F(5.12229709037114e-08)
_A9, _A11, _A13 = F(-8.60467152213735e-11), F(2.00018790482477e-13), F(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = F(4.89352518554385e-03), F(2.26843463243900e-03), F(1.18534705686654e-04), F(1.19825839466702e-06)
HALF, ONE, ZERO = F(0.5), F(1.0), F(0.0)


@kernel(inline=True)
def tanh32(x):
    """Rational float32 tanh; NaN in, NaN out (the clamps' comparisons are false for NaN)."""
    y = _CLAMP if x > _CLAMP else x
    y = _NCLAMP if y < _NCLAMP else y
    y2 = y * y
    p = y2 * (y2 * (y2 * (y2 * (y2 * (y2 * _A13 + _A11) + _A9) + _A7) + _A5) + _A3) + _A1
    q = y2 * (y2 * (y2 * _B6 + _B4) + _B2) + _B0
    r = y * p / q
    return x if abs(x) < _TINY else r


@kernel(inline=True)
def sigmoid32(x):
    """sigmoid(x) = 0.5 + 0.5 tanh(x / 2), the identity the NumPy cells use too."""
    return HALF + HALF * tanh32(HALF * x)


@kernel()
def tanh_array(x, out):
    """out = tanh32(x) over flat float32 arrays (the tests hold it to np.tanh)."""
    for i in range(x.size):
        out[i] = tanh32(x[i])
