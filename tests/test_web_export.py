"""The web export in a real browser: headless Chromium opens the page from disk, and its greedy
text and next-character probabilities are charnn's (float32 exactly; float16 as charnn on the
rounded weights), with its WebAssembly kernel and with the plain JavaScript one."""

import json
from pathlib import Path

import numpy as np
import pytest

import charnn
from browser import BROWSER_MARKS, chromium
from conftest import RECURRENT_CELLS

pytestmark = BROWSER_MARKS  # every test here drives Chromium

TEXT = Path(__file__).resolve().parents[1].joinpath("data", "rnn_notes.txt").read_text(encoding="utf-8")
PROBE = "A recurrent network reads one character at a time, a"[:50]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """cell -> a small trained checkpoint (2 layers of 22 units: not a multiple of the kernel's 4)."""
    folder = tmp_path_factory.mktemp("web")
    out = {}
    for cell in RECURRENT_CELLS:
        run = charnn.train({"data": {"text": TEXT}, "model": {"cell": cell, "hidden_size": 22, "num_layers": 2},
                            "train": {"steps": 150, "batch_size": 16, "seq_len": 32, "lr": 0.01},
                            "run": {"dir": str(folder / "runs"), "name": cell, "eval_every": 0}}, progress=False)
        out[cell] = run.dir / "best.npz"
    return out


@pytest.fixture(scope="module")
def browser():
    with chromium() as new_page:
        yield new_page


def open_export(new_page, checkpoint: Path, folder: Path, dtype: str):
    done = charnn.export(checkpoint, folder / f"{checkpoint.parent.name}-{dtype}.html", format="web", dtype=dtype)
    page = new_page(done.path.as_uri())
    page.wait_for_function("window.charnn !== undefined")
    return page


@pytest.mark.parametrize("cell", RECURRENT_CELLS)
def test_greedy_text_in_the_page_is_charnn_sample_greedy(cell, models, browser, tmp_path, cli):
    page = open_export(browser, models[cell], tmp_path, "float32")
    assert page.evaluate("window.charnn.kernel()") == "wasm-simd"
    code, out, err = cli("sample", "--checkpoint", models[cell], "--seed", "The ", "--greedy", "--length", "300")
    assert code == 0, err
    in_page = page.evaluate("window.charnn.generate({seed: 'The ', length: 300, greedy: true})")
    assert len(in_page) == 300 and "The " + in_page + "\n" == out
    model = charnn.load(models[cell])
    assert page.evaluate("window.charnn.generate({length: 300, greedy: true})") == model.sample(length=300, greedy=True)
    assert page.errors == [] and page.requests == []


@pytest.mark.parametrize("cell", RECURRENT_CELLS)
def test_the_pages_probabilities_are_charnns_with_either_kernel(cell, models, browser, tmp_path):
    page = open_export(browser, models[cell], tmp_path, "float32")
    expected = charnn.load(models[cell]).probabilities(PROBE)
    for wasm in (True, False):
        assert page.evaluate(f"window.charnn.useWasm({json.dumps(wasm)})") == wasm
        got = np.array(page.evaluate(f"window.charnn.probs({json.dumps(PROBE)})"))
        assert got.shape == expected.shape == (50, charnn.load(models[cell]).vocab.size)
        assert np.abs(got - expected).max() < 1e-5, wasm
    assert page.errors == []


@pytest.mark.parametrize("cell", RECURRENT_CELLS)
def test_a_float16_page_is_charnn_on_the_rounded_weights(cell, models, browser, tmp_path):
    rounded = charnn.load(charnn.export(models[cell], tmp_path / "half.safetensors", format="safetensors",
                                        dtype="float16").path)
    page = open_export(browser, models[cell], tmp_path, "float16")
    in_page = page.evaluate("window.charnn.generate({seed: 'The ', length: 300, greedy: true})")
    assert in_page == rounded.sample(seed="The ", length=300, greedy=True)
    assert np.abs(np.array(page.evaluate(f"window.charnn.probs({json.dumps(PROBE)})"))
                  - rounded.probabilities(PROBE)).max() < 1e-5
    assert page.errors == []


def test_the_page_generates_from_its_controls_and_stops(models, browser, tmp_path):
    page = open_export(browser, models["lstm"], tmp_path, "float16")
    header = page.inner_text("header")
    assert "lstm" in header and "LSTM, 2 x 22 units" in header and "bits/char" in header
    page.fill("#seed", "The ")
    page.fill("#length", "120")
    page.check("#greedy")
    assert page.is_disabled("#temperature") and page.is_disabled("#topk")
    page.click("#generate")
    page.wait_for_function("document.getElementById('status').textContent.includes('chars/s')")
    expected = page.evaluate("window.charnn.generate({seed: 'The ', length: 120, greedy: true})")
    assert page.inner_text("#output") == "The " + expected
    page.uncheck("#greedy")
    page.fill("#rng", "7")
    page.fill("#length", "200000")
    page.click("#generate")
    page.wait_for_function("document.getElementById('output').textContent.length > 50")
    page.click("#stop")
    assert page.inner_text("#status") == "stopped" and page.is_enabled("#generate")
    made = len(page.inner_text("#output"))
    page.wait_for_timeout(200)
    assert len(page.inner_text("#output")) == made < 200000  # nothing more after Stop
    page.fill("#seed", "\u263a")  # not in the vocabulary: said on the page, nothing generated
    page.click("#generate")
    assert "outside the model's vocabulary" in page.inner_text("#status")
    assert page.errors == [] and page.requests == []


def test_a_seeded_sample_repeats_and_temperature_and_top_k_apply(models, browser, tmp_path):
    page = open_export(browser, models["gru"], tmp_path, "float32")
    draw = "o => window.charnn.generate(o)"
    a = page.evaluate(draw, {"seed": "The", "length": 200, "rngSeed": 11, "temperature": 0.8, "topK": 5})
    assert a == page.evaluate(draw, {"seed": "The", "length": 200, "rngSeed": 11, "temperature": 0.8, "topK": 5})
    assert a != page.evaluate(draw, {"seed": "The", "length": 200, "rngSeed": 12, "temperature": 0.8, "topK": 5})
    cold = page.evaluate(draw, {"seed": "The", "length": 200, "rngSeed": 11, "temperature": 0.01})
    assert cold == page.evaluate(draw, {"seed": "The", "length": 200, "greedy": True})
    top1 = page.evaluate(draw, {"seed": "The", "length": 200, "rngSeed": 3, "topK": 1})
    assert top1 == cold
    assert page.errors == []


def test_a_bytes_mode_model_decodes_utf8_in_the_page(browser, tmp_path):
    text = "naïve café, déjà vu; " * 40
    run = charnn.train({"data": {"text": text, "encoding": "bytes"}, "model": {"cell": "gru", "hidden_size": 16},
                        "train": {"steps": 60, "batch_size": 8, "seq_len": 16, "lr": 0.01},
                        "run": {"dir": str(tmp_path / "runs"), "name": "bytes", "eval_every": 0}}, progress=False)
    page = open_export(browser, run.dir / "best.npz", tmp_path, "float32")
    model = run.model()
    assert page.evaluate("window.charnn.generate({seed: 'caf', length: 80, greedy: true})") == \
        model.sample(seed="caf", length=80, greedy=True)
    got = np.array(page.evaluate("window.charnn.probs('déjà')"))
    assert got.shape == (6, model.vocab.size) and np.abs(got - model.probabilities("déjà")).max() < 1e-5
    assert page.errors == []
