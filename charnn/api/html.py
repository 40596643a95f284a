"""How charnn's results show themselves in Jupyter (their _repr_html_): small tables, the gradient
figure inline, the report page in a frame. Every fragment is well-formed: each tag closed, every
text escaped.
"""

from __future__ import annotations

import html
import math

MAX_FRAMED_BYTES = 8_000_000  # a bigger report is linked instead of embedded in the notebook


def _cell(value) -> str:
    if isinstance(value, float):
        value = "-" if not math.isfinite(value) else f"{value:.4g}"
    return html.escape("-" if value is None else str(value))


def key_values(title: str, rows) -> str:
    body = "".join(f"<tr><th style='text-align:left'>{_cell(k)}</th><td>{_cell(v)}</td></tr>" for k, v in rows)
    return f"<table><caption style='text-align:left'><b>{html.escape(title)}</b></caption>{body}</table>"


def run(r) -> str:
    rows = [("run directory", r.dir), ("stopped", r.stopped), ("steps", f"{r.steps:,}"), ("characters", f"{r.chars:,}"),
            ("best validation loss", "-" if r.best_val_loss is None else
             f"{r.best_val_loss:.4f} nats/char ({r.best_val_bpc:.3f} bits/char)"),
            ("last validation loss", r.last_val_loss), ("train loss (smoothed)", r.train_loss),
            ("time", f"{r.elapsed_s:.1f} s ({r.chars_per_s:,.0f} chars/s)")]
    note = f"<p>{html.escape(r.note)}</p>" if r.note else ""
    return key_values("charnn run", rows) + note


def gradient_report(report) -> str:
    """Per layer its verdict and horizon, then the figure (when matplotlib is there)."""
    rows = [(f"layer {layer.layer}", f"{layer.verdict}: horizon "
             f"{'beyond T' if layer.horizon is None else layer.horizon}, x{layer.factor:.3f} per step")
            for layer in report.layers]
    table = key_values(f"gradient flow, {report.said()}", rows)
    from charnn.analysis import figures

    if not figures.available():
        return table + "<p>(the figure needs matplotlib)</p>"
    return table + f"<div>{figures.to_svg(figures.gradient_flow(report))}</div>"


def report(r) -> str:
    """The page in a frame (the whole self-contained page), or for a very large one a summary and its path."""
    numbers = r.to_dict()
    summary = key_values("charnn report", [("page", r.path)] + [
        (item["run_dir"], f"{item['steps']:,} steps, best validation loss {_cell(item['best_val_loss'])}")
        for item in numbers.get("runs", [])])
    try:
        page = r.path.read_text(encoding="utf-8")
    except OSError:
        return summary
    if len(page.encode("utf-8")) > MAX_FRAMED_BYTES:
        return summary + f"<p>open <a href='{html.escape(str(r.path))}'>{html.escape(str(r.path))}</a> in a browser</p>"
    return summary + (f"<iframe srcdoc=\"{html.escape(page, quote=True)}\" style='width:100%;height:600px;"
                      "border:1px solid #ccc'></iframe>")
