"""The fast path: the float32 LSTM, GRU and Elman steps, the head's loss, the Adam update and
one-stream sampling on fused Numba kernels (the `fast` extra). charnn's NumPy code stays the
reference, and the path for float64, inspect-gradients, the mlp cell, and any machine without
Numba; the tests hold the two paths to each other.

    jit.py            Numba's options and cache, the vectorisable float32 tanh
    cell_kernels.py   the cells' time steps          chunk_kernels.py  head, Adam, transpose, sampling
    cells.py          the cells over a chunk         model.py          forward and backward of the model
    optim.py          clipping and the fused update  stream.py         one stream read a character at a time

Importing this package imports no Numba: `load()` does, on first use.
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np

CELLS = ("rnn", "lstm", "gru")  # what the kernels cover (the mlp reads a window: NumPy)
CHOICES = ("auto", "numpy", "fast")  # train.kernels: the fast path where it runs, never, or with a notice where not


class Unavailable(Exception):
    """The fast path cannot run here; `missing` when Numba is simply not installed."""

    def __init__(self, reason: str, missing: bool = False):
        super().__init__(reason)
        self.missing = missing


def load():
    """charnn.nn.fast.model with the kernels defined (compiled on their first call, or loaded from
    Numba's cache), or raise Unavailable saying why not in a few words."""
    try:
        importlib.import_module("numba")
    except ModuleNotFoundError as e:
        if e.name == "numba":
            raise Unavailable("Numba is not installed", missing=True) from None
        raise Unavailable(f"Numba does not import ({short(e)})") from None
    except Exception as e:  # noqa: BLE001  e.g. a Numba built for another NumPy
        raise Unavailable(f"Numba does not import ({short(e)})") from None
    try:
        return importlib.import_module("charnn.nn.fast.model")
    except Exception as e:  # noqa: BLE001
        raise Unavailable(f"the fast kernels do not load ({short(e)})") from None


def loaded() -> bool:
    """Whether this process has loaded the kernels (load() succeeded): then they cost nothing more."""
    return "charnn.nn.fast.model" in sys.modules


def reader(params: dict, cell: str, states: list):
    """The fast one-stream reader (charnn/nn/fast/stream.py) for a loaded fast path and a model it
    covers, starting from `states`; None otherwise, or if its kernels do not compile."""
    if not loaded() or not covers(cell, params["head.W_hy"].dtype):
        return None
    from charnn.nn.fast import warmup
    from charnn.nn.fast.stream import FastLayers

    try:
        warmup.sampling(cell)
    except Exception:  # noqa: BLE001  sampling has no one to tell: it reads on NumPy
        return None
    return FastLayers(params, cell, states)


def choose(logits: np.ndarray, temperature: float, u: float) -> int:
    """charnn.nn.sampling.choose's draw without top-k or top-p, given its uniform u (loaded() only)."""
    return int(sys.modules["charnn.nn.fast.chunk_kernels"].choose_id(logits, float(temperature), u))


def covers(cell: str, dtype) -> bool:
    """Whether the kernels run this model: a recurrent cell reading one character at a time, float32."""
    return cell in CELLS and np.dtype(dtype) == np.float32


def short(e: Exception) -> str:
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text if len(text) <= 120 else text[:117] + "..."


def cached() -> bool:
    """Whether compiled kernels are kept on disk for the next process (charnn/nn/fast/jit.py)."""
    from charnn.nn.fast import jit

    return jit.CACHE


def warm_up(cell: str) -> None:
    """Compile (or load from the cache) every kernel a run of `cell` calls, on tiny arrays of the
    types the real calls pass, so a failure shows before training starts; raise whatever Numba raises."""
    from charnn.nn.fast import warmup

    warmup.run(cell)


def compiled_before(cell: str) -> bool | None:
    """Whether this machine's cache already holds `cell`'s kernels: False without a cache, None when
    not known (the cache is where Numba itself chose)."""
    from charnn.nn.fast import jit

    if not jit.CACHE:
        return False
    marker = _marker(cell)
    return None if marker is None else os.path.exists(marker)


def mark_compiled(cell: str) -> None:
    marker = _marker(cell)
    if marker is not None:
        try:
            with open(marker, "w"):
                pass
        except OSError:
            pass


def _marker(cell: str) -> str | None:
    from charnn.nn.fast import jit

    return os.path.join(jit.CACHE_DIR, f"compiled-{cell}") if jit.CACHE_DIR else None
