"""Dynamic evaluation: every character is scored before the model learns from it."""

import json
import math

import numpy as np
import pytest

from charnn.training import checkpoint
from charnn.cli.app import main
from charnn.settings import load_config
from charnn.analysis.dynamic import DynamicSettings, dynamic_loss, gradient_scales
from charnn.nn.evaluate import evaluate_ids
from charnn.training.loop import train
from charnn.data.vocab import Vocab


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dyn")
    (folder / "c.txt").write_text("the cat sat on the mat. the dog sat on the log. " * 40 + "zq")
    (folder / "c.yaml").write_text(f"data:\n  path: c.txt\nmodel:\n  cell: lstm\n  hidden_size: 16\n"
                                   f"train:\n  batch_size: 4\n  seq_len: 16\n  steps: 150\n  lr: 0.01\n"
                                   f"run:\n  dir: {folder / 'runs'}\n  eval_every: 0\n")
    result = train(load_config(folder / "c.yaml"))
    return folder, checkpoint.load(result.run_dir / "best.npz"), result.run_dir / "best.npz"


def scales(ckpt, segment_len=20):
    train_ids = Vocab(tuple(ckpt.vocab_chars)).encode("the cat sat on the mat. the dog sat on the log. " * 30)
    return gradient_scales(ckpt.params, ckpt.cell, train_ids, segment_len, segments=20)


def test_iid_uniform_text_cannot_be_predicted_below_ln_v(trained):
    """Were a segment learned from before it is scored, a large step would drive this far below ln V."""
    _, ckpt, _ = trained
    V = len(ckpt.vocab_chars)
    ids = np.random.default_rng(0).integers(0, V, 4000)
    nats = dynamic_loss(ckpt.params, ckpt.cell, ids, scales(ckpt), DynamicSettings(20, lr=3e-2, decay=0.0))
    per_char_sd = 1.0  # the loss of a near-uniform model varies far less than this per character
    assert nats > math.log(V) - 3 * per_char_sd / math.sqrt(len(ids))


def test_a_text_that_repeats_itself_is_learned_while_reading(trained):
    _, ckpt, _ = trained
    rng = np.random.default_rng(1)
    block = rng.integers(0, len(ckpt.vocab_chars), 120)
    ids = np.tile(block, 12)  # unpredictable the first time, then the same again and again
    static = evaluate_ids(ckpt.params, ids, cell=ckpt.cell).nats_per_char
    dynamic = dynamic_loss(ckpt.params, ckpt.cell, ids, scales(ckpt), DynamicSettings(20, lr=3e-3, decay=1e-3))
    assert dynamic < static - 0.5
    assert all(np.array_equal(ckpt.params[k], checkpoint.load(trained[2]).params[k]) for k in ckpt.params)


def test_cli_keeps_the_static_loss_and_adds_the_dynamic_one(trained, capsys):
    folder, _, path = trained
    (folder / "t.txt").write_text("the dog sat on the mat. " * 20)
    assert main(["eval", str(folder / "t.txt"), "-c", str(path), "--json"]) == 0
    static = json.loads(capsys.readouterr().out)
    assert main(["eval", str(folder / "t.txt"), "-c", str(path), "--json", "--dynamic", "--segment-len", "20"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert both["nats_per_char"] == static["nats_per_char"]
    assert set(both) == set(static) | {"dynamic_nats_per_char", "dynamic_bits_per_char"}
    assert main(["eval", str(folder / "t.txt"), "-c", str(path), "--dynamic", "--segment-len", "20"]) == 0
    assert "dynamic evaluation, nats/char" in capsys.readouterr().out


def test_a_character_the_gradient_scales_never_saw_takes_an_ordinary_step(trained):
    """'z' is in the vocabulary but not in the training segments the scales come from: its row's
    squared gradient is 0 there, and without a floor its first update would be 1e8 times too big."""
    _, ckpt, _ = trained
    vocab = Vocab(tuple(ckpt.vocab_chars))
    ms = scales(ckpt)
    z = vocab.chars.index("z")
    assert ms["rnn.0.W_x"][z].min() > 0
    ids = vocab.encode("the cat sat on the mat. z the dog sat on the log. " * 8)
    static = evaluate_ids(ckpt.params, ids, cell=ckpt.cell).nats_per_char
    dynamic = dynamic_loss(ckpt.params, ckpt.cell, ids, ms, DynamicSettings(20, lr=3e-4, decay=1e-3))
    assert dynamic < static + 0.05


@pytest.mark.parametrize("argv, message", [
    (["--segment-len", "1000"], "fewer than one segment"),
    (["--segment-len", "0"], "--segment-len must be >= 1"),
    (["--dynamic-lr", "-1"], "--dynamic-lr must be > 0"),
    (["--dynamic-decay", "1.5"], "--dynamic-decay must be in [0, 1)"),
])
def test_bad_options_are_one_line_errors(trained, capsys, argv, message):
    """(and options of dynamic evaluation without --dynamic: see the last case below)"""
    folder, _, path = trained
    (folder / "t.txt").write_text("the dog sat on the mat. " * 20)
    code = main(["eval", str(folder / "t.txt"), "-c", str(path), "--dynamic", *argv])
    err = capsys.readouterr().err
    assert code == 1 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_dynamic_options_without_dynamic_say_so(trained, capsys):
    folder, _, path = trained
    (folder / "t.txt").write_text("the dog sat on the mat. " * 20)
    code = main(["eval", str(folder / "t.txt"), "-c", str(path), "--segment-len", "20"])
    assert code == 1 and "add --dynamic" in capsys.readouterr().err
