"""The training loop: overfitting, determinism, exact resume, Ctrl-C and divergence."""

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from charnn.training import checkpoint
from charnn.nn import model
from charnn.settings import load_config
from charnn.errors import CharnnError
from charnn.nn.sampling import generate
from charnn.training import loop
from charnn.training.loop import Callback, TrainingDiverged, TrainingInterrupted, train
from charnn.data.vocab import Vocab

HELLO = Path(__file__).parent.parent / "configs" / "hello.yaml"


def losses(run_dir):
    lines = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [(m["step"], m.get("train_loss"), m.get("val_loss")) for m in lines]


def test_overfits_hello_and_greedy_decoding_spells_it(tmp_path):
    cfg = load_config(HELLO, [f"run.dir={tmp_path}"])
    result = train(cfg)
    final = [m for m in losses(result.run_dir) if m[1] is not None][-1][1]
    assert result.step == 300 and final < 0.05
    ckpt = checkpoint.load(result.run_dir / "best.npz")
    vocab = Vocab(tuple(ckpt.vocab_chars))
    text = "".join(generate(ckpt.params, ckpt.cell, vocab, "h", 4, greedy=True, rng=np.random.default_rng(0)))
    assert text == "ello"


def test_same_seed_gives_bit_identical_losses(write_config, tmp_path):
    path = write_config()
    a = train(load_config(path, ["model.dropout=0.2", "model.num_layers=2"]), tmp_path / "a")
    b = train(load_config(path, ["model.dropout=0.2", "model.num_layers=2"]), tmp_path / "b")
    c = train(load_config(path, ["model.dropout=0.2", "model.num_layers=2", "run.seed=1"]), tmp_path / "c")
    assert losses(a.run_dir) == losses(b.run_dir)
    assert losses(a.run_dir) != losses(c.run_dir)


def test_run_directory_holds_config_metrics_and_checkpoints(write_config):
    result = train(load_config(write_config()))
    names = {p.name for p in result.run_dir.iterdir()}
    assert {"config.yaml", "metrics.jsonl", "latest.npz", "best.npz"} <= names
    lines = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    step_line = next(m for m in lines if "train_loss" in m)
    assert set(step_line) == {"step", "chars", "train_loss", "lr", "grad_norm", "clipped", "chars_per_s", "elapsed_s",
                              "kernels"}
    eval_line = next(m for m in lines if "val_loss" in m)
    assert set(eval_line) == {"step", "chars", "val_loss", "val_bpc", "elapsed_s"}
    best = checkpoint.load(result.run_dir / "best.npz")
    assert best.meta["best_val_loss"] == min(m["val_loss"] for m in lines if "val_loss" in m)


class InterruptAt(Callback):
    """Sends the process a real SIGINT (Ctrl-C) after a given step."""

    def __init__(self, step):
        self.step = step

    def on_step(self, metrics):
        if metrics["step"] == self.step:
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.parametrize("extra", [
    [], ["model.dropout=0.3", "model.num_layers=2", "train.optimizer=rmsprop"],
    ["model.cell=lstm", "model.dropout=0.3", "model.dropout_mode=locked", "model.weight_drop=0.3",
     "model.input_dropout=0.1", "model.gate_init=chrono", "model.num_layers=2"],
])
def test_ctrl_c_then_resume_logs_the_same_losses_as_one_run(write_config, tmp_path, extra):
    path = write_config()
    whole = train(load_config(path, extra), tmp_path / "whole")
    cfg = load_config(path, extra)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(cfg, tmp_path / "split", callback=InterruptAt(7))
    assert stopped.value.hint == f"Resume with: charnn train --resume {tmp_path / 'split'}"
    assert checkpoint.load(tmp_path / "split" / "latest.npz").meta["step"] == 7
    train(cfg, tmp_path / "split", resume=True)
    assert losses(tmp_path / "split") == losses(whole.run_dir)
    a = checkpoint.load(whole.run_dir / "latest.npz").params
    b = checkpoint.load(tmp_path / "split" / "latest.npz").params
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_resume_after_a_crash_drops_metrics_past_the_checkpoint(write_config, tmp_path):
    path = write_config()
    whole = train(load_config(path), tmp_path / "whole")
    run = tmp_path / "crash"
    train(load_config(path, ["train.steps=10"]), run)  # latest.npz at step 10; pretend it ran on to 11
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 11, "train_loss": 123.0}) + "\n")
    assert checkpoint.load(run / "latest.npz").meta["step"] == 10
    train(load_config(path), run, resume=True)
    assert losses(run) == losses(whole.run_dir)


def test_existing_run_directory_is_refused_without_force(write_config):
    cfg = load_config(write_config())
    train(cfg)
    with pytest.raises(CharnnError, match="already exists.*resume.*force"):  # resume=True, force=True
        train(cfg)
    train(cfg, force=True)


def test_resume_without_checkpoint_is_an_error(write_config):
    with pytest.raises(CharnnError, match="nothing to resume"):
        train(load_config(write_config()), resume=True)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(write_config, monkeypatch):
    cfg = load_config(write_config())
    monkeypatch.setattr(loop, "train_step", at_training_step(8, model, "forward", lambda out: (float("nan"), *out[1:])))
    with pytest.raises(TrainingDiverged, match="lower train.lr"):
        train(cfg)
    run_dir = Path(cfg.run.dir) / cfg.run.name
    assert checkpoint.load(run_dir / "latest.npz").meta["step"] == 5


def at_training_step(step: int, module, name: str, spoil):
    """A train_step that, at training step `step` only (1-based; evaluation does not count), passes
    what module.name returns through spoil(); every other step, and everything else, is untouched."""
    real_step, real_fn = loop.train_step, getattr(module, name)
    steps = {"n": 0}

    def step_fn(*args, **kwargs):
        steps["n"] += 1
        if steps["n"] != step:
            return real_step(*args, **kwargs)
        setattr(module, name, lambda *a, **k: spoil(real_fn(*a, **k)))
        try:
            return real_step(*args, **kwargs)
        finally:
            setattr(module, name, real_fn)

    return step_fn


def test_text_too_short_for_one_batch_names_the_keys(write_config):
    cfg = load_config(write_config(), ["train.batch_size=64", "train.seq_len=64"])
    with pytest.raises(CharnnError, match="train.batch_size x train.seq_len"):
        train(cfg)


def test_init_from_copies_weights_and_checks_vocabulary(write_config, tmp_path):
    first = train(load_config(write_config()), tmp_path / "first")
    ckpt_path = first.run_dir / "latest.npz"
    cfg = load_config(write_config(), [f"run.init_from={ckpt_path}", "train.steps=1", "run.eval_every=0",
                                       "train.lr=1e-12", "run.seed=5"])
    second = train(cfg, tmp_path / "second")
    assert second.step == 1
    theirs = checkpoint.load(ckpt_path).params
    ours = checkpoint.load(second.run_dir / "latest.npz").params
    for name in theirs:  # one step at a negligible rate: still the weights it started from
        np.testing.assert_allclose(ours[name], theirs[name], atol=1e-6, err_msg=name)
    assert not np.allclose(theirs["rnn.0.W_hh"], model.init_params(14, 12, 1, rng=np.random.default_rng(5))["rnn.0.W_hh"])
    other = load_config(write_config(text="xyz " * 100), [f"run.init_from={ckpt_path}"])
    with pytest.raises(CharnnError, match="vocabulary differs"):
        train(other, tmp_path / "third")


def test_max_minutes_stops_on_time(write_config):
    cfg = load_config(write_config(), ["train.max_minutes=0.0000001", "train.steps=5000"])
    result = train(cfg)  # were the time budget ignored, this would end after 5000 steps and fail below
    assert result.stop_reason == "time" and result.step < 5000


def test_infinite_gradient_stops_before_the_update(write_config, monkeypatch):
    cfg = load_config(write_config())

    def infinite(out):
        out[0]["rnn.0.W_hh"][0, 0] = np.inf
        return out

    monkeypatch.setattr(loop, "train_step", at_training_step(7, model, "backward", infinite))
    with pytest.raises(TrainingDiverged, match="gradient norm became inf at step 7"):
        train(cfg)
    run_dir = Path(cfg.run.dir) / cfg.run.name
    saved = checkpoint.load(run_dir / "latest.npz")
    assert saved.meta["step"] == 5 and all(np.all(np.isfinite(p)) for p in saved.params.values())


def test_resume_refuses_a_different_optimizer(write_config, tmp_path):
    path = write_config()
    train(load_config(path, ["train.steps=5"]), tmp_path / "r")
    with pytest.raises(CharnnError, match="trained with train.optimizer='adam', the config gives 'rmsprop'"):
        train(load_config(path, ["train.optimizer=rmsprop"]), tmp_path / "r", resume=True)


def test_resume_survives_a_metrics_line_cut_short(write_config, tmp_path):
    path = write_config()
    train(load_config(path, ["train.steps=10"]), tmp_path / "r")
    with open(tmp_path / "r" / "metrics.jsonl", "a") as f:
        f.write('{"step": 11, "train_lo')
    result = train(load_config(path), tmp_path / "r", resume=True)
    assert result.step == 20
    lines = (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()
    assert '{"step": 11, "train_lo' not in (tmp_path / "r" / "metrics.jsonl").read_text()
    assert [json.loads(line)["step"] for line in lines if "train_loss" in line] == list(range(1, 21))


def test_failed_init_from_leaves_no_run_directory(write_config, tmp_path):
    cfg = load_config(write_config(), [f"run.init_from={tmp_path / 'missing.npz'}"])
    with pytest.raises(CharnnError, match="not found"):
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# ---- budgets in time, and a data file that moved ------------------------------------------------


def test_the_learning_rate_follows_the_time_budget():
    """With train.max_minutes the schedule runs over the wall-clock budget (or the step budget,
    whichever is further along): cosine from lr to min_lr as the minutes pass, after the warm-up."""
    from charnn.config import TrainConfig
    from charnn.training.loop import learning_rate

    t = TrainConfig(lr=1.0, min_lr=0.0, lr_schedule="cosine", steps=10**9, max_minutes=2.0, warmup_steps=10)
    assert learning_rate(t, 4, 0.0) == pytest.approx(0.5)  # warm-up: (4 + 1) / 10
    assert learning_rate(t, 100, 0.0) == pytest.approx(1.0)
    assert learning_rate(t, 100, 60.0) == pytest.approx(0.5)  # half the minutes: half way down the cosine
    assert learning_rate(t, 100, 120.0) == pytest.approx(0.0)
    by_steps = TrainConfig(lr=1.0, lr_schedule="cosine", steps=110, max_minutes=2.0, warmup_steps=10)
    assert learning_rate(by_steps, 60, 1.0) == pytest.approx(0.5)  # the step budget is further along


def test_eval_every_minutes_evaluates_on_the_training_clock(write_config, monkeypatch):
    """A fake clock that moves 1 s per reading: one evaluation in each 3-second period of training
    time (at the first step that reaches it), and one at the end."""
    clock = {"now": 0.0}

    def tick():
        clock["now"] += 1.0
        return clock["now"]

    monkeypatch.setattr(loop.time, "perf_counter", tick)
    cfg = load_config(write_config(), ["run.eval_every=0", "run.eval_every_minutes=0.05", "train.steps=12"])
    result = train(cfg)
    evals = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()
             if "val_loss" in line]
    times = [e["elapsed_s"] for e in evals]
    assert len(evals) >= 3 and evals[-1]["step"] == 12
    periods = [int(t // 3) for t in times[:-1]]  # the timed ones: one per 3-second period, each period reached
    assert periods == list(range(1, int(times[-1] // 3) + 1))[: len(periods)] and len(set(periods)) == len(periods)


def test_resume_after_the_data_file_moved(write_config, tmp_path, capsys):
    path = write_config()
    first = train(load_config(path, ["train.steps=5"]), tmp_path / "r")
    moved = tmp_path / "elsewhere" / "corpus.txt"
    moved.parent.mkdir()
    (tmp_path / "corpus.txt").rename(moved)
    run_dir = str(first.run_dir)
    with pytest.raises(CharnnError, match="not found"):  # the old path, named
        train(load_config(first.run_dir / "config.yaml", ["train.steps=10"]), first.run_dir, resume=True)
    resumed = train(load_config(first.run_dir / "config.yaml", ["train.steps=10", f"data.path={moved}"]),
                    first.run_dir, resume=True)
    assert resumed.step == 10 and load_config(first.run_dir / "config.yaml").data.path == str(moved)
    moved.write_text("an entirely different text with other letters: xyzqj " * 20, encoding="utf-8")
    with pytest.raises(CharnnError, match="changed"):
        train(load_config(Path(run_dir) / "config.yaml", ["train.steps=15"]), Path(run_dir), resume=True)
