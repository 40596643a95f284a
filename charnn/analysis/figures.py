"""Every figure charnn draws, and the one place matplotlib (an optional extra) is imported.

Each figure function takes plain results (no files, no runs on disk) and returns a matplotlib
Figure; `to_svg` turns one into inline SVG for a page, `to_file` writes it (PNG, SVG, PDF, ...).
Without matplotlib, `pyplot` raises one CharnnError naming the extra.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np

from charnn.errors import CharnnError

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


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


def available() -> bool:
    """Whether matplotlib can be imported (the figures are an optional extra)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def check_target(path: str | Path, what: str = "--plot") -> None:
    """Refuse, before any work, a picture matplotlib cannot write there."""
    plt = pyplot(what)
    kinds = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in kinds:
        raise CharnnError(f"{what} {path}: cannot draw a {suffix or 'file without extension'!r} picture; "
                          f"end the name in one of {', '.join('.' + k for k in sorted(kinds))}")
    if not Path(path).parent.is_dir():
        raise CharnnError(f"{what} {path}: the folder {Path(path).parent} does not exist")


def to_svg(fig) -> str:
    """The figure as an <svg> element (no XML prologue or doctype: it goes inside an HTML page)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    pyplot().close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def to_file(fig, path: str | Path) -> None:
    try:
        fig.savefig(path)
    except (OSError, ValueError) as e:
        raise CharnnError(f"cannot write the figure to {path}: {e}") from None
    finally:
        pyplot().close(fig)


# ---- training --------------------------------------------------------------------------------------


def _smooth(values: list[float], beta: float = 0.9) -> list[float]:
    out, s = [], None
    for v in values:
        s = v if s is None else beta * s + (1 - beta) * v
        out.append(s)
    return out


def curves(runs, what: str = "charnn report"):
    """Loss against step and time, the learning rate, the gradient norm with its clipping, chars/s.

    Each run has `name`, `steps` and `evals` (its metrics.jsonl records) and `clip_threshold`
    (the norm it clipped at, or None)."""
    plt = pyplot(what)
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    (loss_step, loss_time, lr), (gnorm, speed, blank) = axes
    blank.axis("off")
    for k, run in enumerate(runs):
        _one_run_curves(axes, COLOURS[k % len(COLOURS)], run)
    titles = [(loss_step, "loss against step", "step", "nats/char"),
              (loss_time, "loss against training time", "minutes", "nats/char"),
              (lr, "learning rate", "step", "lr"), (gnorm, "gradient norm before clipping", "step", "norm"),
              (speed, "training speed", "step", "chars/s")]
    for ax, title, xlabel, ylabel in titles:
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    if any(r.get("grad_norm") for run in runs for r in run.steps):
        gnorm.set_yscale("log")
    fig.tight_layout()
    return fig


def _one_run_curves(axes, colour: str, run) -> None:
    (loss_step, loss_time, lr), (gnorm, speed, _) = axes
    label = run.name
    steps = [r["step"] for r in run.steps]
    train = [r["train_loss"] for r in run.steps]
    minutes = [r.get("elapsed_s", 0) / 60 for r in run.steps]
    for ax, x, xv in ((loss_step, steps, [e["step"] for e in run.evals]),
                      (loss_time, minutes, [e.get("elapsed_s", 0) / 60 for e in run.evals])):
        ax.plot(x, train, color=colour, alpha=0.25, lw=0.8)
        ax.plot(x, _smooth(train), color=colour, lw=1.4, label=f"{label} train (smoothed)")
        ax.plot(xv, [e["val_loss"] for e in run.evals], color=colour, ls="--", marker="o", ms=3,
                label=f"{label} validation")
    lr.plot(steps, [r.get("lr") for r in run.steps], color=colour, label=label)
    gnorm.plot(steps, [r.get("grad_norm") for r in run.steps], color=colour, lw=0.8, label=label)
    clipped = [(s, r.get("grad_norm")) for s, r in zip(steps, run.steps) if r.get("clipped")]
    if clipped:
        gnorm.scatter(*zip(*clipped), color=colour, marker="x", s=12, label=f"{label} clipped")
    if run.clip_threshold:
        gnorm.axhline(run.clip_threshold, color=colour, ls=":", lw=1,
                      label=f"{label} clip threshold {run.clip_threshold:g}")
    speed.plot(steps, [r.get("chars_per_s") for r in run.steps], color=colour, label=label)


# ---- gradients and gates ----------------------------------------------------------------------------


def gradient_flow(report, what: str = "the gradient figure"):
    """inspect-gradients' numbers: per layer, the norms against lag on a log scale, the horizon marked."""
    plt = pyplot(what)
    n = len(report.layers)
    fig, axes = plt.subplots(1, n, figsize=(6.5 * n, 3.8), squeeze=False)
    for ax, layer in zip(axes[0], report.layers):
        series = [("dL_ds", "||dl_T/ds_{T-k}||"), ("jacobian", "||ds_T/ds_{T-k}||"), ("contribution", "step's share of dl_T/dW")]
        if layer.dL_dc is not None:
            series += [("dL_dc", "||dl_T/dc_{T-k}|| (cell state)"), ("cell_path", "product of forget gates")]
        for key, label in series:
            values = np.asarray(getattr(layer, key), float)
            ax.semilogy(layer.lag, np.where(values > 0, values, np.nan), label=label)
        if layer.horizon is not None:
            ax.axvline(layer.horizon, color="k", ls=":", label=f"memory horizon {layer.horizon}")
        ax.set_xlabel("lag k (steps back)")
        ax.set_title(f"layer {layer.layer}: {layer.verdict}, x{layer.factor:.3f} per step")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def gate_saturation(gates: list[dict], what: str = "charnn report"):
    """Per gate, each unit's fraction of time left-saturated against right-saturated (one colour per layer)."""
    plt = pyplot(what)
    names = list(dict.fromkeys(g["gate"] for g in gates))
    fig, axes = plt.subplots(1, len(names), figsize=(3.3 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        for layer in sorted({g["layer"] for g in gates}):
            pts = [(g["left"], g["right"]) for g in gates if g["gate"] == name and g["layer"] == layer]
            ax.scatter(*zip(*pts), s=8, alpha=0.6, color=COLOURS[layer % len(COLOURS)], label=f"layer {layer}")
        ax.plot([0, 1], [1, 0], color="0.7", lw=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"gate {name}")
        ax.set_xlabel("fraction left-saturated (< 0.1)")
        ax.set_ylabel("fraction right-saturated (> 0.9)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ---- the experiments --------------------------------------------------------------------------------


def memory_span(groups: list[dict], what: str = "the memory-span figure"):
    """Mean fraction learned against K per cell, the seeds' range as a bar (memory_span.summary's groups)."""
    plt = pyplot(what)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for cell in dict.fromkeys(g["cell"] for g in groups):
        g = [x for x in groups if x["cell"] == cell]
        ks = np.array([x["K"] for x in g], float)
        mean = np.array([100 * x["mean"] for x in g])
        # clipped at 0: seeds that agree average to a hair off their value ((0.99 + 0.99 + 0.99) / 3 < 0.99)
        err = np.maximum(0, [[100 * (x["mean"] - x["min"]) for x in g], [100 * (x["max"] - x["mean"]) for x in g]])
        ax.errorbar(ks, mean, yerr=err, marker="o", capsize=3, label=f"{cell} ({g[0]['seeds']} seeds)")
    lags = sorted({g["K"] for g in groups})
    ax.set_xscale("log")
    ax.minorticks_off()
    ax.set_xticks(lags, [str(k) for k in lags])
    low = min(-5.0, min(100 * g["min"] for g in groups) - 5)
    ax.set_ylim(max(low, -200) if math.isfinite(low) else -5, 105)
    ax.set_xlabel("K: characters the model must remember across")
    ax.set_ylabel("% of recoverable information learned")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend()
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def bias_variance(result: dict, what: str = "the bias-variance figure"):
    """The three terms of the decomposition and the training loss against the varied key's values."""
    plt = pyplot(what)
    rows = result["rows"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key, label, style in (("total", "held-out loss (mean of the K models)", "o-"),
                              ("bias_noise", "bias + noise: -ln p-bar", "s--"),
                              ("variance", "variance: mean KL(p-bar || p_k)", "^--"),
                              ("train_loss", "training loss (own slice)", "v:")):
        ax.plot(x, [r[key] for r in rows], style, label=label)
    ax.set_xticks(x, [str(r["value"]) for r in rows])
    ax.set_xlabel(result["key"])
    ax.set_ylabel("nats/char")
    ax.set_title(f"bias and variance over {result['subsets']} disjoint training slices")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
