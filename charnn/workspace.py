"""A small reuse pool for the large per-chunk arrays of forward and backward.

Fresh arrays that large come straight from the operating system, and paying its page
faults on every step cost more than a tenth of the step. So the big arrays come from a
small pool keyed by shape and dtype. A pooled array is handed out again only while
nothing but the pool refers to it: an array still reachable from a forward cache (or any
view of it) is never reused, so a cache stays valid for as long as it is held and
backward can be called on it any number of times. Gradients, last states and dh0 are
always fresh arrays, never pooled.
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

import numpy as np

_POOL_LOCK = threading.Lock()
_POOL: OrderedDict[tuple, list[np.ndarray]] = OrderedDict()
_POOL_MAX_KEYS = 24  # shapes remembered (least recently used forgotten first)
# arrays kept per shape: a gated cell keeps several same-shaped arrays in its cache (h and c,
# per layer), and a cache being built may overlap the one still held
_POOL_PER_KEY = 6


def _pool_refs(bufs: list, i: int) -> int:
    return sys.getrefcount(bufs[i])


# the count seen, on this exact path, for an array referred to by the pool alone
_FREE_REFS = _pool_refs([np.empty(0)], 0)


def scratch(shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array from the pool; one that nothing else refers to, else a new one."""
    key = (shape, np.dtype(dtype).str)
    with _POOL_LOCK:
        bufs = _POOL.get(key)
        if bufs is None:
            bufs = _POOL[key] = []
            if len(_POOL) > _POOL_MAX_KEYS:
                _POOL.popitem(last=False)
        else:
            _POOL.move_to_end(key)
        for i in range(len(bufs)):
            if _pool_refs(bufs, i) == _FREE_REFS:
                return bufs[i]
        buf = np.empty(shape, dtype)
        if len(bufs) < _POOL_PER_KEY:
            bufs.append(buf)
        return buf


def release() -> None:
    """Drop the pooled arrays (memory is returned once no cache refers to them)."""
    with _POOL_LOCK:
        _POOL.clear()
