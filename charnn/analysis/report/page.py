"""`charnn report`'s page: one self-contained HTML file, a pure function of the runs' analyses.

No network at all: no CDN, web font, external script or image; figures are inline SVG (from
charnn/analysis/figures.py), and the style and script (page.css, page.js beside this module)
are inlined. The text views (units, surprisal, the five likeliest next characters) are plain
HTML coloured by the script from the numbers embedded in the page as JSON.
"""

from __future__ import annotations

import base64
import html
import json
import math
from functools import cache
from importlib import resources

import numpy as np

from charnn.analysis import figures
from charnn.analysis.report.analysis import RunAnalysis
from charnn.analysis.report.reading import MIN_CORRELATION, TextReading, bits
from charnn.config import to_dict

FLOAT_BUDGET = 100_000  # unit values embedded as floats up to this many; beyond, one byte each
WHAT = "charnn report"  # how a missing-matplotlib error names the need


@cache
def asset(name: str) -> str:
    """page.css or page.js, shipped with the package."""
    return resources.files("charnn.analysis.report").joinpath(name).read_text(encoding="utf-8")


def _esc(value) -> str:
    return html.escape(str(value))


def _section(title: str, body: str) -> str:
    return f"<h2>{_esc(title)}</h2>\n{body}\n"


def _table(rows, header=None, highlight=()) -> str:
    head = "" if header is None else "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"
    body = "".join(
        f"<tr{' class=diff' if i in highlight else ''}>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows))
    return f"<table>{head}{body}</table>"


# ---- the text views' data ------------------------------------------------------------------------------


def text_data(reading: TextReading, vocab_chars, picked: list[dict], shown: list[dict]) -> dict:
    """The numbers the script colours the text with: exact where small, one byte per value where large."""
    L, n, H = reading.units.shape
    units = reading.units.transpose(0, 2, 1)  # (L, H, n): one row per unit
    if units.size <= FLOAT_BUDGET:
        encoded = {"encoding": "float", "values": np.round(units, 7).tolist()}
    else:  # values lie in [-1, 1]: 255 steps, at most 1/255 off
        q = np.round((np.clip(units, -1, 1) + 1) * 127.5).astype(np.uint8)
        encoded = {"encoding": "uint8", "values": base64.b64encode(q.tobytes()).decode("ascii")}
    return {
        "chars": list(reading.text),
        "surprisal": [None if not math.isfinite(s) else round(float(s), 7) for s in reading.surprisal],
        "top": [[[vocab_chars[i], round(float(p), 7)] for i, p in zip(ids, ps)]
                for ids, ps in zip(reading.top_ids, reading.top_probs)],
        "layers": L, "units_per_layer": H, "units": encoded, "picked": picked, "shown": shown,
    }


def _json_for_script(data: dict) -> str:
    """JSON safe inside <script>: no "</" can end the element early."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


# ---- sections ---------------------------------------------------------------------------------------------


def config_table(analyses: list[RunAnalysis]) -> str:
    """The runs' configs side by side, keys whose values differ highlighted."""
    flat = [{f"{s}.{k}": v for s, values in to_dict(a.run.config).items() for k, v in values.items()} for a in analyses]
    rows, differ = [], []
    for i, key in enumerate(sorted(set().union(*flat))):
        values = [json.dumps(f.get(key), ensure_ascii=False) for f in flat]
        rows.append([key, *values])
        if len(set(values)) > 1:
            differ.append(i)
    return _table(rows, ["key", *[a.run.name for a in analyses]], highlight=differ)


def summary_rows(a: RunAnalysis) -> list[list[str]]:
    s = a.run.summary()
    best, last = s["best_val_loss"], s["last_val_loss"]
    loss = lambda x: "-" if x is None else f"{x:.4f} nats/char, {bits(x):.3f} bits/char, perplexity {math.exp(x):.2f}"  # noqa: E731
    rows = [["data", a.data_line], ["model", a.model_line],
            ["training", f"{s['steps']:,} steps, {s['chars']:,} characters, {s['elapsed_s']:.0f} s"
             + (f", {s['chars_per_s']:,.0f} chars/s" if s["chars_per_s"] else "")],
            ["best validation loss", loss(best)], ["last validation loss", loss(last)]]
    if a.run.skipped_lines:
        rows.append(["note", f"{a.run.skipped_lines} log lines could not be read (cut short by a crash) and were skipped"])
    return rows


def units_section(data: dict) -> str:
    layers = "".join(f"<option value={layer}>layer {layer}</option>" for layer in range(data["layers"]))
    shown = "".join(f"<p>layer {p['layer']}, unit {p['unit']}{' (' + _esc(p['why']) + ')' if p.get('why') else ''}"
                    f"</p><div class=text id=shown-{k}></div>" for k, p in enumerate(data["shown"]))
    picked = ("<p class=picked>the units that follow simple properties of the text best (|r| >= "
              f"{MIN_CORRELATION}): <span id=picked></span></p>" if data["picked"] else
              "<p class=note>No unit follows any of the simple properties (quotes, brackets, position in the line, "
              f"...) with |r| >= {MIN_CORRELATION}; pick units by number above.</p><span id=picked></span>")
    return (
        "<p>Each character is coloured by one unit's value after reading it (blue -1, white 0, red +1; "
        "for the LSTM its tanh(c)). Hover over (or tap) a character for the five likeliest next characters.</p>"
        f"<p>unit picker: <select id=layer>{layers}</select> unit <input id=unit type=number min=0 "
        f"max={data['units_per_layer'] - 1} value=0> <span id=unit-label></span></p>"
        + picked + "<div class=text id=unit-text></div>"
        "<h3>surprisal: -ln p of each character given the text before it (white 0, red the largest)</h3>"
        "<div class=text id=surprisal-text></div>"
        f"<h3>units shown side by side (--units)</h3>{shown}"
        f"<script type=application/json id=report-data>{_json_for_script(data)}</script>"
    )


def gradient_section(a: RunAnalysis) -> str:
    report = a.gradients
    if report is None:
        return f"<p class=note>{_esc(a.gradients_note)}</p>"
    lines = "".join(
        f"<p><b>layer {layer.layer}: {_esc(layer.verdict)}</b> ({_esc(report.said())}): memory horizon "
        f"{'beyond T' if layer.horizon is None else layer.horizon}, "
        f"{'growth' if layer.factor > 1 else 'decay'} x{layer.factor:.3f} per step, "
        f"{'' if layer.spectral_radius is None else f'spectral radius {layer.spectral_radius:.3f}, '}"
        f"largest singular value {layer.max_singular_value:.3f}. {_esc(layer.advice)}</p>"
        for layer in report.layers)
    return (f"<p>charnn inspect-gradients on best.npz, {_esc(report.said())}: the command's defaults, so the "
            "two agree.</p>" + figures.to_svg(figures.gradient_flow(report, WHAT)) + lines)


def samples_section(a: RunAnalysis) -> str:
    rows = [[s["step"], s.get("temperature", "-"), s.get("text", "")] for s in a.run.samples]
    logged = (_table(rows, ["step", "temperature", "sample"]) if rows else
              "<p class=note>No previews were logged (run.sample_every is 0).</p>")
    return logged + f"<p>a fresh sample from best.npz:</p><pre class=sample>{_esc(a.fresh_sample)}</pre>"


# ---- pages -------------------------------------------------------------------------------------------------


def page(title: str, sections: list[str], has_script: bool) -> str:
    script = f"<div id=top5></div><script>{asset('page.js')}</script>" if has_script else ""
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title>"
            f"<style>{asset('page.css')}</style></head><body><h1>{_esc(title)}</h1>\n{''.join(sections)}{script}"
            "</body></html>\n")


def single_run_page(a: RunAnalysis) -> str:
    """Summary, curves, samples, gradient flow, units and gates of one run."""
    run = a.run
    sections = [_section("summary", _table(summary_rows(a))
                         + f"<details><summary>resolved config</summary>{config_table([a])}</details>"),
                _section("learning curves", figures.to_svg(figures.curves([run], WHAT)))]
    if a.reading is None:
        sections.append("<p class=note>This run has no checkpoint yet (best.npz is written at its first evaluation): "
                        "the page shows its learning curves only.</p>")
        return page(f"charnn report: {run.name}", sections, has_script=False)
    sections += [_section("samples over training", samples_section(a)),
                 _section("gradient flow", gradient_section(a)),
                 _section("what the units learned",
                          units_section(text_data(a.reading, run.best.vocab.chars, a.picked, a.shown)))]
    if a.gates:
        sections.append(_section("gates: how often each is shut (< 0.1) or open (> 0.9)",
                                 figures.to_svg(figures.gate_saturation(a.gates, WHAT))))
    return page(f"charnn report: {run.name}", sections, has_script=True)


def comparison_page(analyses: list[RunAnalysis]) -> str:
    """Several runs: their summaries, curves overlaid and configs side by side."""
    rows = [[a.run.name, *[r[1] for r in summary_rows(a)]][:6] for a in analyses]
    header = ["run", "data", "model", "training", "best validation loss", "last validation loss"]
    sections = [_section("summary", _table(rows, header)),
                _section("learning curves", figures.to_svg(figures.curves([a.run for a in analyses], WHAT))),
                _section("configs (differing keys highlighted)", config_table(analyses)),
                "<p class=note>The unit, gate and gradient views are drawn for a single run: "
                "charnn report RUN_DIR.</p>"]
    return page("charnn report: " + ", ".join(a.run.name for a in analyses), sections, has_script=False)
