"""matplotlib, the optional extra behind every figure: imported on demand, with one clear error without it."""

from __future__ import annotations

from charnn.errors import CharnnError


def pyplot(what: str = "this figure"):
    """matplotlib.pyplot on the Agg backend (files, no screen); text in SVGs stays text."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from charnn import hints

        raise CharnnError(f"{what} needs matplotlib: {hints.install('plot')}") from None
    plt.rcParams.update({"svg.fonttype": "none", "font.size": 9})
    return plt
