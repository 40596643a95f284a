"""charnn experiment: the bias-variance identity, and both commands end to end on tiny inputs."""

import json

import numpy as np
import pytest

from charnn.analysis import bias_variance
from charnn.analysis import memory_span
from conftest import run



def random_log_probs(rng, K, n, V):
    logits = rng.normal(0, 2, (K, n, V))
    return logits - np.log(np.exp(logits).sum(axis=2, keepdims=True))


def test_the_decomposition_is_an_identity():
    rng = np.random.default_rng(0)
    log_probs = random_log_probs(rng, 5, 300, 7)
    targets = rng.integers(0, 7, 300)
    total, bias_noise, variance = bias_variance.decompose(log_probs, targets)
    assert total == pytest.approx(bias_noise + variance, abs=1e-10) and variance > 0
    assert total == pytest.approx(-np.mean(log_probs[:, np.arange(300), targets]), rel=1e-12)


def test_identical_models_have_no_variance():
    rng = np.random.default_rng(1)
    one = random_log_probs(rng, 1, 200, 6)
    total, bias_noise, variance = bias_variance.decompose(np.repeat(one, 4, axis=0), rng.integers(0, 6, 200))
    assert variance == pytest.approx(0, abs=1e-12) and total == pytest.approx(bias_noise, abs=1e-12)


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    (tmp_path / "t.txt").write_text("".join(rng.choice(list("abcd efgh\n"), 6000)))
    (tmp_path / "c.yaml").write_text("data:\n  path: t.txt\n  val_fraction: 0.1\nmodel:\n  hidden_size: 8\n"
                                     "train:\n  batch_size: 4\n  seq_len: 16\n  steps: 30\nrun:\n  eval_every: 0\n")
    return tmp_path


def test_bias_variance_end_to_end(tiny, capsys):
    code, out, err = run(capsys, "experiment", "bias-variance", tiny / "c.yaml", "--vary", "model.hidden_size=4,16",
                         "--subsets", "3", "--json", "--out", tiny / "bv")
    assert code == 0, err
    result = json.loads(out)
    assert result["key"] == "model.hidden_size" and result["subsets"] == 3
    assert [r["value"] for r in result["rows"]] == ["4", "16"]
    for r in result["rows"]:
        assert set(r) == {"value", "total", "bias_noise", "variance", "train_loss"}
        assert r["total"] == pytest.approx(r["bias_noise"] + r["variance"], abs=1e-10) and r["variance"] > 0
    assert (tiny / "bv.csv").read_text().splitlines()[0] == "model.hidden_size,total,bias_noise,variance,train_loss"
    assert (tiny / "bv.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("argv, message", [
    (["--vary", "model.hiden_size=4,8"], "unknown key (did you mean 'hidden_size'?)"),
    (["--vary", "model.dropout=0.2,1.5"], "--vary model.dropout=1.5: must be in [0, 1)"),
    (["--vary", "model.hidden_size"], "expected KEY=v1,v2"),
    (["--vary", "model.hidden_size=8", "--subsets", "1"], "--subsets must be >= 2"),
    (["--vary", "model.hidden_size=8", "--subsets", "200"], "fewer than one batch needs"),
])
def test_bias_variance_bad_input_before_any_training(tiny, capsys, monkeypatch, argv, message):
    monkeypatch.setattr(bias_variance, "train", lambda *a, **k: pytest.fail("trained"))
    code, out, err = run(capsys, "experiment", "bias-variance", tiny / "c.yaml", *argv)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and message in err and len(lines) == 1 and lines[0].startswith("error:"), err


def test_memory_span_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(memory_span, "TEXT_CHARS", 20_000)
    code, out, err = run(capsys, "experiment", "memory-span", "--cells", "mlp,gru", "--context", "4", "--seeds", "0,1",
                         "--stages", "2:0.2,3:0.2", "--json", "--out", tmp_path / "ms")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert [(r["cell"], r["K"], r["seed"]) for r in rows] == [
        (c, k, s) for c in ("mlp", "gru") for s in (0, 1) for k in (2, 3)]
    assert all(set(r) == {"cell", "K", "seed", "fraction", "horizon"} for r in rows)
    assert {r["horizon"] for r in rows if r["cell"] == "mlp"} == {"context 4"}
    assert (tmp_path / "ms.csv").exists() and (tmp_path / "ms.png").exists()
    code, _, err = run(capsys, "experiment", "memory-span", "--cells", "transformer")
    assert code == 1 and "choose among rnn, lstm, gru, mlp" in err
