"""Everything a report shows about one run, computed once into a `RunAnalysis` (page.py only draws it).

For a run with a best.npz: the corpus it trained on (summarised), the model read over a text
(what each unit showed, surprisal, likeliest next characters), the units that follow simple
properties of the text, gate saturation, a fresh sample, and inspect-gradients' default
analysis of the same checkpoint on the same windows, so the two give one verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charnn.analysis import gradients
from charnn.analysis.report.reading import (Run, TextReading, check_units_option, gate_saturation, load_run,
                                            pick_units, read_text)
from charnn.data.corpus import Corpus, load_corpus
from charnn.errors import CharnnError, ParameterError
from charnn.nn import cells
from charnn.nn.sampling import generate

MAX_FRESH_SAMPLE = 500  # characters of the fresh sample the page shows


@dataclass
class RunAnalysis:
    run: Run
    data_line: str  # the corpus, summarised (or why it is not available now)
    model_line: str  # cell, layers x units, parameters, dtype
    reading: TextReading | None = None  # None: the run has no best.npz yet
    picked: list[dict] = field(default_factory=list)  # units that follow a property of the text
    shown: list[dict] = field(default_factory=list)  # units shown side by side: the picked, then the most varied
    gates: list[dict] = field(default_factory=list)  # saturation per gate and unit
    gradients: gradients.GradientReport | None = None
    gradients_note: str | None = None  # why there is no gradient analysis
    fresh_sample: str = ""

    @property
    def checkpoint(self) -> str | None:
        return str(self.run.path / "best.npz") if self.run.best is not None else None


def _corpus(run: Run) -> tuple[Corpus | None, str]:
    """(corpus or None, its summary line): the corpus is needed for its validation text."""
    d = run.config.data
    source = d.path or d.url or "inline text (data.text)"
    try:
        corpus = load_corpus(run.config)
    except CharnnError as e:
        return None, f"{source} (not available now: {e})"
    n = len(corpus.train) + len(corpus.val) + len(corpus.test)
    return corpus, (f"{source}: {n:,} characters, vocabulary {corpus.vocab.size}, train {len(corpus.train):,} / "
                    f"val {len(corpus.val):,} / test {len(corpus.test):,}")


def _model_line(run: Run) -> str:
    m = run.config.model
    params = f", {sum(p.size for p in run.best.params.values()):,} parameters" if run.best else ""
    return f"{m.cell}, {m.num_layers} x {m.hidden_size} units{params}, {m.dtype}"


def choose_text(run: Run, corpus: Corpus | None, text: str | None, text_chars: int) -> str:
    """The text the units are shown over: --text, else the first text_chars of the validation text."""
    if text is not None:
        from charnn.data.vocab import to_symbols

        return to_symbols(text, run.config.data.encoding)
    if text_chars < 2:
        raise ParameterError("{text_chars} must be >= 2, got {got}", got=text_chars)
    if corpus is None:
        raise ParameterError("the corpus of {run} is not available to take text from; give {text}", run=run.path)
    ids = corpus.val if len(corpus.val) >= 2 else corpus.train
    return corpus.vocab.decode(np.asarray(ids[:text_chars]))


def shown_units(reading: TextReading, picked: list[dict], count: int) -> list[dict]:
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


def _gradients(run: Run, corpus: Corpus | None, ids: np.ndarray):
    """(inspect-gradients' default report on best.npz, or None and why): the validation windows it
    uses, so the two agree; the report text's own windows only when the corpus is gone."""
    if not cells.get(run.best.cell).recurrent:
        return None, (f"The {run.best.cell} cell has no recurrent state: it sees exactly its model.context "
                      "characters, and no gradient flows back further.")
    if corpus is not None:
        source, name = gradients.window_source(corpus.train, corpus.val, None)
    else:
        source, name = ids, "the report text (the corpus is not available)"
    if len(source) < 3:
        return None, "The text is too short for the gradient analysis."
    return gradients.inspect_model(run.best.params, run.best.cell, None, steps=None, corpus_ids=source,
                                   corpus_name=name), None


def analyse_run(path: str | Path, text: str | None = None, text_chars: int = 2000, units: int = 6,
                detail: bool = True) -> RunAnalysis:
    """Read a run directory and compute what its page shows; detail=False (a comparison of several
    runs) stops at the logs and the corpus summary."""
    run = load_run(path)
    corpus, data_line = _corpus(run)
    result = RunAnalysis(run, data_line, _model_line(run))
    if not detail or run.best is None:
        return result
    ckpt = run.best
    result.reading = read_text(ckpt, choose_text(run, corpus, text, text_chars))
    check_units_option(units, result.reading)
    s = run.config.sample
    result.fresh_sample = "".join(generate(ckpt.params, ckpt.cell, ckpt.vocab, "", min(s.length, MAX_FRESH_SAMPLE),
                                          temperature=s.temperature, top_k=s.top_k, rng=np.random.default_rng(0),
                                          char_counts=ckpt.char_counts))
    result.picked, result.gates = pick_units(result.reading), gate_saturation(result.reading)
    result.shown = shown_units(result.reading, result.picked, units)
    result.gradients, result.gradients_note = _gradients(run, corpus, ckpt.vocab.encode(result.reading.text))
    return result
