"""`charnn report`'s page: one self-contained HTML file, figures from matplotlib as inline SVG.

No network at all: no CDN, web font, external script or image. The text views (units,
surprisal, the five likeliest next characters) are plain HTML coloured by a small script
from the numbers embedded in the page as JSON.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math

import numpy as np

from charnn.errors import CharnnError
from charnn.files import write_text_atomically
from charnn.analysis.figures import pyplot
from charnn.analysis.report.reading import MIN_CORRELATION, Run, TextReading, bits

FLOAT_BUDGET = 100_000  # unit values embedded as floats up to this many; beyond, one byte each
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _pyplot():
    return pyplot("charnn report")


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    _pyplot().close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # drop the XML prologue and doctype: the page is HTML


def _esc(value) -> str:
    return html.escape(str(value))


def _fmt(x, spec=".4f") -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


# ---- figures ------------------------------------------------------------------------------------------


def _smooth(values: list[float], beta: float = 0.9) -> list[float]:
    out, s = [], None
    for v in values:
        s = v if s is None else beta * s + (1 - beta) * v
        out.append(s)
    return out


def curves_figure(runs: list[Run]) -> str:
    """Loss against step and time, the learning rate, the gradient norm with its clipping, chars/s."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    (loss_step, loss_time, lr), (gnorm, speed, blank) = axes
    blank.axis("off")
    for k, run in enumerate(runs):
        colour, label = COLOURS[k % len(COLOURS)], run.name
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
        clip = run.config.get("train", {}).get("grad_clip")
        if clip and run.config.get("train", {}).get("clip_mode", "norm") == "norm":
            gnorm.axhline(clip, color=colour, ls=":", lw=1, label=f"{label} clip threshold {clip:g}")
        speed.plot(steps, [r.get("chars_per_s") for r in run.steps], color=colour, label=label)
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
    return _svg(fig)


def gradient_figure(report) -> str:
    """inspect-gradients on the best checkpoint: per layer, the three norms against lag, horizon marked."""
    plt = _pyplot()
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
    return _svg(fig)


def gates_figure(gates: list[dict]) -> str:
    """Per gate, each unit's fraction of time left-saturated against right-saturated (one colour per layer)."""
    plt = _pyplot()
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
    return _svg(fig)


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


# ---- the page --------------------------------------------------------------------------------------------


def _table(rows, header=None, highlight=()) -> str:
    head = "" if header is None else "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>"
    body = "".join(
        f"<tr{' class=diff' if i in highlight else ''}>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows))
    return f"<table>{head}{body}</table>"


def config_table(runs: list[Run]) -> str:
    """The runs' configs side by side, keys whose values differ highlighted."""
    keys = sorted({f"{s}.{k}" for run in runs for s, v in run.config.items() if isinstance(v, dict) for k in v})
    rows, differ = [], []
    for i, key in enumerate(keys):
        section, name = key.split(".", 1)
        values = [json.dumps(run.config.get(section, {}).get(name), ensure_ascii=False) for run in runs]
        rows.append([key, *values])
        if len(set(values)) > 1:
            differ.append(i)
    return _table(rows, ["key", *[run.name for run in runs]], highlight=differ)


def summary_rows(run: Run, info: dict) -> list[list[str]]:
    s = run.summary()
    best, last = s["best_val_loss"], s["last_val_loss"]
    loss = lambda x: "-" if x is None else f"{x:.4f} nats/char, {bits(x):.3f} bits/char, perplexity {math.exp(x):.2f}"  # noqa: E731
    rows = [["data", info.get("data", "-")], ["model", info.get("model", "-")],
            ["training", f"{s['steps']:,} steps, {s['chars']:,} characters, {s['elapsed_s']:.0f} s"
             + (f", {s['chars_per_s']:,.0f} chars/s" if s["chars_per_s"] else "")],
            ["best validation loss", loss(best)], ["last validation loss", loss(last)]]
    if run.skipped_lines:
        rows.append(["note", f"{run.skipped_lines} log lines could not be read (cut short by a crash) and were skipped"])
    return rows


STYLE = """
body{font-family:sans-serif;max-width:1400px;margin:1em auto;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:1.6em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:2px 8px;text-align:left;
vertical-align:top;font-size:.9em}tr.diff td{background:#fff3c4}.note{color:#a15c00}
.text{font-family:monospace;font-size:13px;line-height:1.9;white-space:pre-wrap;word-break:break-all;
border:1px solid #ddd;padding:6px;max-height:22em;overflow-y:auto}.text span{padding:1px 0}
#top5{position:fixed;display:none;background:#fff;border:1px solid #888;padding:4px 8px;font-family:monospace;
font-size:12px;box-shadow:2px 2px 6px #999;z-index:10}pre.sample{white-space:pre-wrap;background:#f6f6f6;padding:6px}
svg{max-width:100%;height:auto}.picked button{margin:2px;font-size:.85em}
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const n = data.chars.length, H = data.units_per_layer;
  let unitValues;
  if (data.units.encoding === "float") {
    unitValues = (l, u) => data.units.values[l][u];
  } else {  // one byte per value: v = q / 127.5 - 1
    const raw = atob(data.units.values), bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    unitValues = (l, u) => {
      const out = new Float32Array(n), offset = (l * H + u) * n;
      for (let i = 0; i < n; i++) out[i] = bytes[offset + i] / 127.5 - 1;
      return out;
    };
  }
  const visible = (ch) => ch === "\n" ? "\u21b5" : ch === " " ? "\u2423" : ch === "\t" ? "\u21e5" : ch;
  const diverging = (v) => {  // -1 blue, 0 white, +1 red, never darker than the text needs to stay readable
    const a = Math.min(1, Math.abs(v));
    return `hsl(${v >= 0 ? 0 : 215}, 80%, ${(100 - 38 * a).toFixed(1)}%)`;
  };
  function build(id, count) {
    const box = document.getElementById(id), frag = document.createDocumentFragment();
    for (let i = 0; i < count; i++) {
      const s = document.createElement("span");
      s.textContent = data.chars[i] === "\n" ? "\u21b5\n" : data.chars[i];
      s.dataset.i = i;
      frag.appendChild(s);
    }
    box.appendChild(frag);
    return box.children;
  }
  function paint(spans, l, u) {
    const v = unitValues(l, u);
    for (let i = 0; i < spans.length; i++) spans[i].style.background = diverging(v[i]);
  }
  const unitSpans = build("unit-text", n);
  const layerSel = document.getElementById("layer"), unitInput = document.getElementById("unit");
  const label = document.getElementById("unit-label");
  function choose(l, u) {
    layerSel.value = String(l); unitInput.value = String(u); update();
  }
  function update() {
    const l = Math.max(0, Math.min(data.layers - 1, parseInt(layerSel.value, 10) || 0));
    const u = Math.max(0, Math.min(H - 1, parseInt(unitInput.value, 10) || 0));
    paint(unitSpans, l, u);
    const pick = data.picked.find((p) => p.layer === l && p.unit === u);
    label.textContent = `layer ${l}, unit ${u}` + (pick ? `: follows "${pick.property}" (correlation ${pick.correlation.toFixed(3)})` : "");
  }
  layerSel.addEventListener("change", update);
  unitInput.addEventListener("input", update);
  const picks = document.getElementById("picked");
  data.picked.forEach((p) => {
    const b = document.createElement("button");
    b.textContent = `${p.property}: layer ${p.layer} unit ${p.unit} (r = ${p.correlation.toFixed(2)})`;
    b.addEventListener("click", () => choose(p.layer, p.unit));
    picks.appendChild(b);
  });
  data.shown.forEach((p, k) => {
    const spans = build(`shown-${k}`, Math.min(n, 600));
    paint(spans, p.layer, p.unit);
  });
  const surprisal = build("surprisal-text", n);
  const top = Math.max(...data.surprisal.filter((s) => s !== null), 1e-9);
  for (let i = 0; i < n; i++) {
    const s = data.surprisal[i];
    const c = s === null ? 255 : Math.round(255 * (1 - Math.min(1, s / top)));
    surprisal[i].style.background = `rgb(255,${c},${c})`;
    if (s !== null) surprisal[i].title = `-ln p = ${s.toFixed(3)} nats`;
  }
  const box = document.getElementById("top5");
  function show(event) {
    const i = event.target.dataset ? event.target.dataset.i : undefined;
    if (i === undefined) { box.style.display = "none"; return; }
    box.replaceChildren();
    const head = document.createElement("div");
    head.textContent = `after ${JSON.stringify(data.chars[i])}, next:`;
    box.appendChild(head);
    data.top[i].forEach(([ch, p]) => {
      const row = document.createElement("div");
      row.className = "top5-row";
      row.textContent = `${visible(ch)}  ${p.toFixed(3)}`;
      box.appendChild(row);
    });
    box.style.left = (event.clientX + 12) + "px";
    box.style.top = (event.clientY + 12) + "px";
    box.style.display = "block";
  }
  for (const id of ["unit-text", "surprisal-text"]) {
    const el = document.getElementById(id);
    el.addEventListener("mouseover", show);
    el.addEventListener("click", show);
    el.addEventListener("mouseleave", () => { box.style.display = "none"; });
  }
  const first = data.picked[0] || {layer: 0, unit: 0};
  choose(first.layer, first.unit);
})();
"""


def _section(title: str, body: str) -> str:
    return f"<h2>{_esc(title)}</h2>\n{body}\n"


def units_section(data: dict) -> str:
    layers = "".join(f"<option value={layer}>layer {layer}</option>" for layer in range(data["layers"]))
    shown = "".join(f"<p>layer {p['layer']}, unit {p['unit']}{' (' + _esc(p['why']) + ')' if p.get('why') else ''}"
                    f"</p><div class=text id=shown-{k}></div>" for k, p in enumerate(data["shown"]))
    return (
        "<p>Each character is coloured by one unit's value after reading it (blue -1, white 0, red +1; "
        "for the LSTM its tanh(c)). Hover over (or tap) a character for the five likeliest next characters.</p>"
        f"<p>unit picker: <select id=layer>{layers}</select> unit <input id=unit type=number min=0 "
        f"max={data['units_per_layer'] - 1} value=0> <span id=unit-label></span></p>"
        + ("<p class=picked>the units that follow simple properties of the text best (|r| >= "
           f"{MIN_CORRELATION}): <span id=picked></span></p>" if data["picked"] else
           f"<p class=note>No unit follows any of the simple properties (quotes, brackets, position in the line, "
           f"...) with |r| >= {MIN_CORRELATION}; pick units by number above.</p><span id=picked></span>")
        + "<div class=text id=unit-text></div>"
        "<h3>surprisal: -ln p of each character given the text before it (white 0, red the largest)</h3>"
        "<div class=text id=surprisal-text></div>"
        f"<h3>units shown side by side (--units)</h3>{shown}"
        f"<script type=application/json id=report-data>{_json_for_script(data)}</script>"
    )


def _json_for_script(data: dict) -> str:
    """JSON safe inside <script>: no "</" can end the element early."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False).replace("</", "<\\/")


def page(title: str, sections: list[str], has_script: bool) -> str:
    script = f"<div id=top5></div><script>{SCRIPT}</script>" if has_script else ""
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8><title>{_esc(title)}</title>"
            f"<style>{STYLE}</style></head><body><h1>{_esc(title)}</h1>\n{''.join(sections)}{script}</body></html>\n")


# ---- building the report ------------------------------------------------------------------------------


def _corpus_info(run: Run):
    """(corpus or None, 'data' summary line): the corpus is needed only for its validation text."""
    from charnn.settings import from_dict
    from charnn.data.corpus import load_corpus

    d = run.config.get("data", {})
    source = d.get("path") or d.get("url") or "inline text (data.text)"
    try:
        corpus = load_corpus(from_dict(run.config, source=str(run.path / "config.yaml")))
    except CharnnError as e:
        return None, f"{source} (not available now: {e})"
    n = len(corpus.train) + len(corpus.val) + len(corpus.test)
    return corpus, (f"{source}: {n:,} characters, vocabulary {corpus.vocab.size}, train {len(corpus.train):,} / "
                    f"val {len(corpus.val):,} / test {len(corpus.test):,}")


def _model_info(run: Run) -> str:
    m = run.config.get("model", {})
    params = f", {sum(p.size for p in run.best.params.values()):,} parameters" if run.best else ""
    return f"{m.get('cell', 'rnn')}, {m.get('num_layers', 1)} x {m.get('hidden_size')} units{params}, {m.get('dtype')}"


def choose_text(run: Run, corpus, text: str | None, text_chars: int) -> str:
    """The text the units are shown over: --text, else the first text_chars of the validation text."""
    if text is not None:
        from charnn.data.vocab import to_symbols

        return to_symbols(text, run.config.get("data", {}).get("encoding", "utf-8"))
    if text_chars < 2:
        raise CharnnError(f"--text-chars must be >= 2, got {text_chars}")
    if corpus is None:
        raise CharnnError(f"the corpus of {run.path} is not available to take text from; give --text FILE")
    ids = corpus.val if len(corpus.val) >= 2 else corpus.train
    return corpus.vocab.decode(np.asarray(ids[:text_chars]))


def _shown_units(reading: TextReading, picked: list[dict], count: int) -> list[dict]:
    """The picked units first, then the units that vary most over the text."""
    shown, seen = [], set()
    candidates = [dict(p, why=f"{p['property']}, r = {p['correlation']:.2f}") for p in picked]
    for flat in np.argsort(-reading.units.std(axis=1).ravel(), kind="stable"):
        layer, unit = divmod(int(flat), reading.units.shape[2])
        candidates.append({"layer": layer, "unit": unit, "why": "varies most"})
    for p in candidates:  # a unit picked for two properties, or also among the most varied, is shown once
        if (p["layer"], p["unit"]) not in seen and len(shown) < count:
            shown.append(p)
            seen.add((p["layer"], p["unit"]))
    return shown


def _gradient_section(run: Run, corpus, ids: np.ndarray) -> str:
    """inspect-gradients' default analysis of best.npz (the same windows of the validation text, so
    the two give one verdict); the report text's own windows only when the corpus is gone."""
    from charnn.nn import cells
    from charnn.analysis import gradients

    if not cells.get(run.best.cell).recurrent:
        return (f"<p class=note>The {_esc(run.best.cell)} cell has no recurrent state: it sees exactly its "
                f"model.context characters, and no gradient flows back further.</p>")
    if corpus is not None:
        source, name = gradients.window_source(corpus.train, corpus.val, None)
    else:
        source, name = ids, "the report text (the corpus is not available)"
    if len(source) < 3:
        return "<p class=note>The text is too short for the gradient analysis.</p>"
    report = gradients.inspect_model(run.best.params, run.best.cell, None, steps=None, corpus_ids=source,
                                     corpus_name=name)
    lines = "".join(
        f"<p><b>layer {layer.layer}: {_esc(layer.verdict)}</b> ({_esc(report.said())}): memory horizon "
        f"{'beyond T' if layer.horizon is None else layer.horizon}, "
        f"{'growth' if layer.factor > 1 else 'decay'} x{layer.factor:.3f} per step, "
        f"{'' if layer.spectral_radius is None else f'spectral radius {layer.spectral_radius:.3f}, '}"
        f"largest singular value {layer.max_singular_value:.3f}. {_esc(layer.advice)}</p>"
        for layer in report.layers)
    return (f"<p>charnn inspect-gradients on best.npz, {_esc(report.said())}: the command's defaults, so the "
            "two agree.</p>" + gradient_figure(report) + lines)


def _samples_section(run: Run, fresh: str) -> str:
    rows = [[s["step"], s.get("temperature", "-"), s.get("text", "")] for s in run.samples]
    logged = (_table(rows, ["step", "temperature", "sample"]) if rows else
              "<p class=note>No previews were logged (run.sample_every is 0).</p>")
    return logged + f"<p>a fresh sample from best.npz:</p><pre class=sample>{_esc(fresh)}</pre>"


def single_run_page(run: Run, text: str | None, text_chars: int, units: int) -> tuple[str, dict]:
    from charnn.analysis.report.reading import check_units_option, gate_saturation, pick_units, read_text
    from charnn.nn.sampling import generate
    from charnn.data.vocab import Vocab

    corpus, data_line = _corpus_info(run)
    sections = [_section("summary", _table(summary_rows(run, {"data": data_line, "model": _model_info(run)}))
                         + f"<details><summary>resolved config</summary>{config_table([run])}</details>"),
                _section("learning curves", curves_figure([run]))]
    summary = {"units": [], "gates": []}
    if run.best is None:
        sections.append("<p class=note>This run has no checkpoint yet (best.npz is written at its first evaluation): "
                        "the page shows its learning curves only.</p>")
        return page(f"charnn report: {run.name}", sections, has_script=False), summary
    reading = read_text(run.best, choose_text(run, corpus, text, text_chars))
    check_units_option(units, reading)
    vocab = Vocab(tuple(run.best.vocab_chars))
    sample_cfg = run.config.get("sample", {})
    fresh = "".join(generate(run.best.params, run.best.cell, vocab, "", min(sample_cfg.get("length", 200), 500),
                             temperature=sample_cfg.get("temperature", 1.0), top_k=sample_cfg.get("top_k", 0),
                             rng=np.random.default_rng(0), char_counts=run.best.char_counts))
    picked, gates = pick_units(reading), gate_saturation(reading)
    sections += [_section("samples over training", _samples_section(run, fresh)),
                 _section("gradient flow", _gradient_section(run, corpus, vocab.encode(reading.text))),
                 _section("what the units learned",
                          units_section(text_data(reading, vocab.chars, picked, _shown_units(reading, picked, units))))]
    if gates:
        sections.append(_section("gates: how often each is shut (< 0.1) or open (> 0.9)", gates_figure(gates)))
    summary.update(units=picked, gates=gates)
    return page(f"charnn report: {run.name}", sections, has_script=True), summary


def comparison_page(runs: list[Run]) -> str:
    rows = [[run.name, *[r[1] for r in summary_rows(run, {"data": _corpus_info(run)[1], "model": _model_info(run)})]]
            for run in runs]
    header = ["run", "data", "model", "training", "best validation loss", "last validation loss"]
    sections = [_section("summary", _table([r[:6] for r in rows], header)),
                _section("learning curves", curves_figure(runs)),
                _section("configs (differing keys highlighted)", config_table(runs)),
                "<p class=note>The unit, gate and gradient views are drawn for a single run: "
                "charnn report RUN_DIR.</p>"]
    return page("charnn report: " + ", ".join(run.name for run in runs), sections, has_script=False)


def _best_path(run: Run) -> str | None:
    return str(run.path / "best.npz") if run.best is not None else None


def build_report(run_dirs: list, output=None, text_file=None, text_chars: int = 2000, units: int = 6) -> dict:
    """Write the report of one run (or the comparison of several); returns the numbers behind it."""
    from pathlib import Path

    from charnn.data.sources import read_text_file
    from charnn.analysis.report.reading import load_run

    _pyplot()  # without matplotlib: say so before any work
    runs = [load_run(path) for path in run_dirs]
    output = Path(output) if output is not None else runs[0].path / "report.html" if len(runs) == 1 else Path("report.html")
    if not output.parent.is_dir():
        raise CharnnError(f"cannot write the report to {output}: the folder {output.parent} does not exist; "
                          "choose another file with -o")
    text = read_text_file(text_file) if text_file is not None else None
    if len(runs) == 1:
        html_text, numbers = single_run_page(runs[0], text, text_chars, units)
    else:
        html_text, numbers = comparison_page(runs), {}
    try:
        write_text_atomically(output, html_text)  # the whole page or nothing
    except OSError as e:
        raise CharnnError(f"cannot write the report to {output}: {e.strerror or e}; choose another file with -o") from None
    result = {"report": str(output), "checkpoint": _best_path(runs[0]) if len(runs) == 1 else None,
              "runs": [dict({k: run.summary()[k] for k in ("run_dir", "steps", "best_val_loss")},
                            checkpoint=_best_path(run)) for run in runs]}
    result.update(numbers)
    return result
