"""charnn report: the numbers on the page, the unit picker, bad input, and the page in a real browser."""

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from charnn.training import checkpoint
from charnn.nn import cells, model, reference
from charnn.settings import load_config
from charnn.errors import CharnnError
from charnn.analysis.report import build_report
from charnn.training.loop import train
from charnn.data.vocab import Vocab
from browser import chromium, needs_browser
from conftest import CELLS, one_line_error, run

pytest.importorskip("matplotlib")  # in the test extra; the report needs it

QUOTES_TEXT = ('He said “yes” and left. “Go” she said, then “no more” and walked off. ' * 6
               + 'so “we go now” and “hello there”. ') * 3




def make_run(tmp_path, cell="rnn", name="r", text=None, steps=20, extra=()):
    text = text or ("the cat (sat) on the mat. “the dog” sat on the log.\nA Big Cat.\n" * 20)
    (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    (tmp_path / f"{name}.yaml").write_text(
        f"data:\n  path: {name}.txt\n  val_fraction: 0.2\nmodel:\n  cell: {cell}\n  hidden_size: 10\n  num_layers: 2\n"
        f"  dtype: float64\n{'  context: 3' if cells.get(cell).windowed else ''}\n"
        f"train:\n  batch_size: 2\n  seq_len: 8\n  steps: {steps}\nrun:\n  dir: {tmp_path / 'runs'}\n"
        "  eval_every: 5\n  log_every: 1\n  sample_every: 10\n", encoding="utf-8")
    train(load_config(tmp_path / f"{name}.yaml", list(extra)))
    return tmp_path / "runs" / name


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory):
    """One small trained run for the tests that only read it."""
    return make_run(tmp_path_factory.mktemp("shared"))


def page_data(path: Path) -> dict:
    html = path.read_text(encoding="utf-8")
    found = re.search(r'<script type=application/json id=report-data>(.*?)</script>', html, re.S)
    return json.loads(found.group(1).replace("<\\/", "</"))


@pytest.mark.parametrize("cell", CELLS)
def test_numbers_on_the_page_equal_a_direct_forward_pass(tmp_path, cell):
    run_dir = make_run(tmp_path, cell)
    result = build_report([run_dir], text_chars=200)
    data = page_data(Path(result["report"]))
    ckpt = checkpoint.load(run_dir / "best.npz")
    text = "".join(data["chars"])
    ids = Vocab(tuple(ckpt.vocab_chars)).encode(text)
    params = {k: v.astype(np.float64) for k, v in ckpt.params.items()}
    zero = model.zero_state(params, 1, cell)
    targets = np.append(ids[1:], 0)[None, :]
    ref = reference.forward(params, cell, ids[None, :], targets, zero)
    probs = ref["probs"][0]  # (n, V): row i predicts character i + 1
    assert data["units"]["encoding"] == "float" and len(text) == 200
    c = cells.get(cell)
    _, _, cache = model.forward(params, ids[None, :], targets, zero, cell=cell)  # what each unit shows, directly
    for layer in range(2):
        expected = c.unit_values(cache.cell_caches[layer])[:, 0]  # the output, or e.g. the LSTM's tanh(c)
        np.testing.assert_allclose(np.array(data["units"]["values"][layer]).T, expected, atol=1e-6)
    surprisal = -np.log(probs[np.arange(len(ids) - 1), ids[1:]])
    np.testing.assert_allclose(data["surprisal"][1:], surprisal, rtol=1e-6, atol=1e-6)
    assert data["surprisal"][0] is None
    for i in (0, 17, len(ids) - 1):
        order = np.argsort(-probs[i], kind="stable")[:5]
        assert [c for c, _ in data["top"][i]] == [ckpt.vocab_chars[j] for j in order]
        np.testing.assert_allclose([p for _, p in data["top"][i]], probs[i][order], atol=1e-6)
    if c.sigmoid_gates:
        gates = {(g["layer"], g["gate"]) for g in result["gates"]}
        assert gates == {(layer, g) for layer in range(2) for g in c.sigmoid_gates}
        assert all(0 <= g["left"] <= 1 and 0 <= g["right"] <= 1 for g in result["gates"])


def test_the_picker_finds_a_unit_built_to_track_quotes(tmp_path):
    run_dir = make_run(tmp_path, text=QUOTES_TEXT, steps=1)
    ckpt = checkpoint.load(run_dir / "best.npz")
    chars, k = ckpt.vocab_chars, 7
    p = ckpt.params
    rng = np.random.default_rng(0)
    for name in p:
        p[name][...] = rng.normal(0, 0.1, p[name].shape)
    # unit k of layer 0: set by “, reset by ”, and held by its own recurrent weight in between
    p["rnn.0.W_xh"][:, k] = 0
    p["rnn.0.W_xh"][chars.index("“"), k], p["rnn.0.W_xh"][chars.index("”"), k] = 10, -10
    p["rnn.0.W_hh"][:, k], p["rnn.0.W_hh"][k, :] = 0, 0
    p["rnn.0.W_hh"][k, k], p["rnn.0.b_h"][k] = 3, 0
    checkpoint.save(run_dir / "best.npz", ckpt)
    (tmp_path / "q.txt").write_text(QUOTES_TEXT[:1500], encoding="utf-8")
    result = build_report([run_dir], text_file=tmp_path / "q.txt")
    quotes = [u for u in result["units"] if u["property"] == "inside quotes"]
    assert quotes == [{"layer": 0, "unit": k, "property": "inside quotes", "correlation": pytest.approx(quotes[0]["correlation"])}]
    assert quotes[0]["correlation"] > 0.9


def test_cli_json_and_a_self_contained_page(tmp_path, capsys, monkeypatch):
    run_dir = make_run(tmp_path, "lstm")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "report", "--json", "--text-chars", "200", "--units", "3")
    result = json.loads(out)
    assert code == 0, err
    assert set(result) == {"report", "runs", "units", "gates", "checkpoint"}
    assert result["report"] == str(Path("runs") / "r" / "report.html")
    assert result["checkpoint"] == str(Path("runs") / "r" / "best.npz")
    assert result["runs"] == [{"run_dir": "runs/r", "steps": 20, "best_val_loss": pytest.approx(result["runs"][0]["best_val_loss"]),
                               "checkpoint": str(Path("runs") / "r" / "best.npz")}]
    assert err.startswith("using runs/r/best.npz") and len(err.splitlines()) == 1  # it says which run it picked
    html = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "<link" not in html and "<img" not in html and not re.search(r"(src|href)=\S*http", html)
    assert "@import" not in html and not re.search(r"url\((?!#)", html)  # only the SVGs' own #clip paths
    assert "gates: how often each is shut" in html
    assert len(page_data(run_dir / "report.html")["shown"]) == 3 and len(html) < 3_000_000


def test_big_models_embed_one_byte_per_value(shared_run, tmp_path, monkeypatch):
    run_dir = shared_run
    import charnn.analysis.report.page

    monkeypatch.setattr(charnn.analysis.report.page, "FLOAT_BUDGET", 100)
    data = page_data(Path(build_report([run_dir], output=tmp_path / "q.html", text_chars=200)["report"]))
    assert data["units"]["encoding"] == "uint8"
    q = np.frombuffer(base64.b64decode(data["units"]["values"]), np.uint8).reshape(2, 10, 200) / 127.5 - 1
    monkeypatch.setattr(charnn.analysis.report.page, "FLOAT_BUDGET", 10**9)
    floats = np.array(page_data(Path(build_report([run_dir], output=tmp_path / "f.html", text_chars=200)["report"]))
                      ["units"]["values"])
    assert np.abs(q - floats).max() <= 1 / 255 + 1e-9


def test_several_runs_compare_curves_and_configs(tmp_path, capsys):
    a = make_run(tmp_path, name="a")
    b = make_run(tmp_path, name="b", extra=["train.lr=0.01"])
    code, out, err = run(capsys, "report", a, b, "-o", tmp_path / "cmp.html", "--json")
    assert code == 0, err
    html = (tmp_path / "cmp.html").read_text(encoding="utf-8")
    assert re.search(r"<tr class=diff><td>train\.lr</td><td>0\.002</td><td>0\.01</td>", html)
    assert "a validation" in html and "b validation" in html  # a legend entry per run
    assert [r["run_dir"] for r in json.loads(out)["runs"]] == [str(a), str(b)]


def test_a_run_without_a_checkpoint_shows_its_curves_and_says_so(tmp_path, capsys):
    run_dir = make_run(tmp_path)
    (run_dir / "best.npz").unlink()
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "train_lo')  # a line cut short by a crash
    code, out, err = run(capsys, "report", run_dir)
    assert code == 0 and out.strip() == str(run_dir / "report.html")  # without --json: the page's path
    result = build_report([run_dir])
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert "has no checkpoint yet" in html and "1 log lines could not be read" in html and "<svg" in html
    assert result["units"] == [] and "report-data" not in html


@pytest.mark.parametrize("case, message", [
    ("not a run", "is not a run directory"),
    ("outside vocabulary", "outside the model's vocabulary"),
    ("units 0", "--units must be between 1 and 20"),
    ("units too many", "--units must be between 1 and 20"),
    ("unwritable", "cannot write the report"),
    ("no runs", "no run found under runs/"),
])
def test_bad_input_is_one_line_and_leaves_no_file(shared_run, tmp_path, capsys, monkeypatch, case, message):
    run_dir = shared_run
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd.txt").write_text("the cat ~ zebra", encoding="utf-8")
    argv = {"not a run": ["report", tmp_path],
            "outside vocabulary": ["report", run_dir, "--text", tmp_path / "odd.txt"],
            "units 0": ["report", run_dir, "--units", "0"],
            "units too many": ["report", run_dir, "--units", "21"],
            "unwritable": ["report", run_dir, "-o", tmp_path / "missing" / "r.html"],
            "no runs": ["report"]}[case]
    code, out, err = run(capsys, *argv)  # (tmp_path has no runs/ folder: "no runs")
    assert code == 1 and out == "" and message in err and one_line_error(err), err
    assert not (run_dir.exists() and (run_dir / "report.html").exists())
    assert not list(tmp_path.rglob(".*.tmp"))


def test_without_matplotlib_the_error_names_the_extra(shared_run, monkeypatch):
    run_dir = shared_run
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("matplotlib") else real_import(name, *a, **k))
    with pytest.raises(CharnnError, match=r"pip install -e '\.\[plot\]'"):
        build_report([run_dir])


# ---- in a real browser -------------------------------------------------------------------------------------

@needs_browser
def test_the_page_in_headless_chromium(tmp_path):
    run_dir = make_run(tmp_path, "lstm", steps=40)
    page_path = Path(build_report([run_dir], text_chars=400)["report"])
    shots = os.environ.get("CHARNN_REPORT_SCREENSHOTS")  # a folder: keep screenshots for the docs
    with chromium() as new_page:
        page = new_page(page_path.as_uri())
        errors, requests = page.errors, page.requests
        page.wait_for_selector("#unit-text span")
        assert errors == [] and requests == []
        before = page.eval_on_selector("#unit-text span:nth-child(5)", "e => e.style.background")
        page.select_option("#layer", "1")
        page.fill("#unit", "3")
        assert "layer 1, unit 3" in page.inner_text("#unit-label")
        after = page.eval_on_selector("#unit-text span:nth-child(5)", "e => e.style.background")
        assert after and after != before
        page.hover("#unit-text span:nth-child(12)")
        page.wait_for_selector("#top5", state="visible")
        assert len(page.query_selector_all("#top5 .top5-row")) == 5
        if shots:
            page.screenshot(path=str(Path(shots) / "report_units.png"))
            page.goto(page_path.as_uri() + "#")
            page.screenshot(path=str(Path(shots) / "report_top.png"))
        assert errors == []
