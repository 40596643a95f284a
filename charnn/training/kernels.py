"""Which kernels a run trains on, as train.kernels asks: the fast path (charnn/nn/fast, Numba) or
NumPy's, and the one line that says so when it matters.

    auto   the fast path where it runs (Numba installed, a float32 rnn, lstm or gru model) and pays
           (a run of at least AUTO_MIN_STEPS steps, or with a time budget: loading the kernels
           takes a quarter of a second, configs/hello.yaml's 300 steps take less), else NumPy,
           silently when Numba is simply not installed
    fast   the same, with a notice whenever the fast path cannot run
    numpy  NumPy, always

A fast path that is installed but does not load or compile is never an error: the run trains on
NumPy and says why in one line. The first run on a machine compiles the kernels (seconds), and
says that too before it starts.
"""

from __future__ import annotations

from collections.abc import Callable

from charnn import hints
from charnn.config import Config
from charnn.nn import fast

FAST, NUMPY = "fast", "numpy"
AUTO_MIN_STEPS = 1000


def choose(config: Config, say: Callable[[str], None]):
    """(the path's name, charnn.nn.fast.model or None), with the kernels ready to run."""
    m, asked = config.model, config.train.kernels
    if asked == NUMPY or (asked == "auto" and config.train.steps < AUTO_MIN_STEPS and not config.train.max_minutes):
        return NUMPY, None
    if not fast.covers(m.cell, m.dtype):
        if asked == FAST:
            why = f"the {m.cell} cell" if m.cell not in fast.CELLS else f"model.dtype {m.dtype}"
            say(f"note: train.kernels=fast: the fast kernels run float32 {', '.join(fast.CELLS)} models, "
                f"not {why}; training on NumPy")
        return NUMPY, None
    try:
        kernels = fast.load()
    except fast.Unavailable as e:
        if asked == FAST or not e.missing:
            install = f" (the fast extra: {hints.install('fast')})" if e.missing else ""
            say(f"note: the fast kernels cannot run: {e}{install}; training on NumPy")
        return NUMPY, None
    return _compiled(m.cell, kernels, say)


def _compiled(cell: str, kernels, say: Callable[[str], None]):
    before = fast.compiled_before(cell)
    if before is False:
        say("compiling the fast kernels (first run only) ..." if fast.cached() else
            "compiling the fast kernels (no writable cache: set CHARNN_NUMBA_CACHE to keep them) ...")
    try:
        fast.warm_up(cell)
    except Exception as e:  # noqa: BLE001  whatever the compiler raises, the run goes on without it
        say(f"note: the fast kernels did not compile ({fast.short(e)}); training on NumPy "
            "(train.kernels=numpy skips them)")
        return NUMPY, None
    if before is False:
        fast.mark_compiled(cell)
    return FAST, kernels
