"""Reusable memory for the big per-chunk arrays, owned by whoever runs the steps.

Fresh arrays of T*B*H floats come straight from the operating system, and paying its page
faults on every step cost more than a tenth of a training step. A `Workspace` keeps such
arrays for reuse: `take` hands out a free one of the shape asked for (or a new one), `give`
returns one. An array is handed out again only after it was given back, so nothing held is
ever overwritten: a forward cache keeps its arrays until its owner calls `release(cache)`.

The trainer, the evaluator and the benchmark each own one workspace; code that passes none
gets `FRESH`, which allocates every array anew, so forward and backward stay pure functions.
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Free arrays by (shape, dtype), for a loop of same-shaped steps."""

    def __init__(self) -> None:
        self._free: dict[tuple, list[np.ndarray]] = {}

    def take(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An uninitialised array: a returned one of this shape and dtype, else a new one."""
        free = self._free.get((tuple(shape), np.dtype(dtype).str))
        return free.pop() if free else np.empty(shape, dtype)

    def give(self, *arrays: np.ndarray | None) -> None:
        """Return arrays got from `take` (None is ignored); the caller must not use them again."""
        for a in arrays:
            if a is not None:
                self._free.setdefault((a.shape, a.dtype.str), []).append(a)

    def release(self, cache) -> None:
        """Return every array a forward cache holds; the cache can no longer be used."""
        self.give(*cache.buffers)
        cache.buffers.clear()
        cache.released = True


class _Fresh(Workspace):
    """No reuse: every `take` is a new array and `give` forgets it."""

    def take(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    def give(self, *arrays: np.ndarray | None) -> None:
        pass


FRESH = _Fresh()
