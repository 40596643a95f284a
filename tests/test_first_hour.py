"""The first hour of a new user (issue #23): their own text in one command, samples that start
like the text, commands that say which checkpoint they used, resume of a finished run, one
gradient verdict, and hints that point the right way from wherever the user stands."""

import json
from pathlib import Path

import numpy as np
import pytest

from charnn import presets
from charnn.training import checkpoint
from charnn.config import key_hint
from charnn.settings import load_config
from charnn.errors import CharnnError
from charnn.nn.sampling import generate
from charnn.training.loop import train
from charnn.data.vocab import Vocab
from conftest import one_line_error

ROOT = Path(__file__).parent.parent
LINES = "the cat sat on the mat.\nthe dog sat on the log.\n" * 30  # 1,410 characters with line breaks


@pytest.fixture
def story(tmp_path, monkeypatch):
    """A user's own text in a folder of their own (not the repository)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "story.txt").write_text(LINES, encoding="utf-8")
    return tmp_path / "story.txt"


# ---- charnn train --data FILE ------------------------------------------------------------------


def test_train_data_needs_no_config_and_names_the_run_after_the_file(story, cli):
    code, out, err = cli("train", "--data", story, "--minutes", "0.02", "--set", "model.hidden_size=8",
                         "model.num_layers=1", "train.steps=1000000000", "--json", "-q")
    assert code == 0, err
    result = json.loads(out)
    assert result["run_dir"] == str(Path("runs") / "story") and result["stopped"] == "time"
    saved = load_config(Path("runs/story/config.yaml"))
    assert saved.data.path == str(story) and saved.train.max_minutes == pytest.approx(0.02)
    assert saved.model.init == "xavier"  # the preset, not the dataclass defaults
    assert saved.model.dropout == 0.5 and saved.train.batch_size == 8  # sized for a text of 1,410 characters


def test_the_preset_fits_a_text_shorter_than_one_batch(tmp_path):
    text = tmp_path / "tiny.txt"
    text.write_text("hello there\n" * 10, encoding="utf-8")  # 120 characters: far less than 32 x 64
    cfg = presets.for_text(text)
    n_train = int(120 * (1 - cfg.data.val_fraction))
    assert cfg.train.batch_size * cfg.train.seq_len + 1 <= n_train
    short = tmp_path / "hi.txt"
    short.write_text("hello", encoding="utf-8")  # 5 characters: nothing can be held out
    cfg = presets.for_text(short)
    assert cfg.data.val_fraction == 0 and cfg.train.seq_len == 4 and cfg.train.batch_size == 1


@pytest.mark.parametrize("chars, expected", [
    (3_816, {"model.hidden_size": 64, "model.num_layers": 1, "model.dropout": 0.5, "train.batch_size": 8,
             "train.steps": 600, "run.eval_every": 5}),
    (20_000, {"model.dropout": 0.5, "run.eval_every": 5}),
    (100_000, {"model.dropout": 0.3, "run.eval_every": 21}),
    (1_115_394, {}),  # Tiny Shakespeare: the preset as measured, unchanged
])
def test_the_preset_is_sized_to_the_text(chars, expected):
    fitted = presets.fit_to_text(chars, 32, 64, 0.1)
    assert {k: fitted[k] for k in expected} == expected and (expected or fitted == {})


def test_data_replaces_a_configs_data_path(story, tmp_path):
    import charnn

    cfg = charnn.load_config(ROOT / "configs" / "demo.yaml", data=story, minutes=2)
    assert cfg.data.path == str(story) and cfg.train.max_minutes == 2 and cfg.run.name == "demo"


def test_a_text_given_as_the_config_points_to_data(story, cli):
    code, out, err = cli("train", story)
    assert code == 1 and out == "" and one_line_error(err)
    assert "is not a YAML config" in err and "charnn train --data" in err


def test_train_without_config_or_data_is_a_usage_error(cli):
    code, _, err = cli("train")
    assert code == 2 and one_line_error(err) and "--data FILE" in err


# ---- samples without a seed start the way the text does ---------------------------------------


def tiny_model(text, tmp_path, name="m"):
    (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    cfg = presets.for_text(tmp_path / f"{name}.txt", ["model.hidden_size=16", "model.num_layers=1", "train.steps=60",
                                                       "train.max_minutes=0", f"run.dir={tmp_path / 'runs'}",
                                                       "run.sample_every=30", "sample.length=40"])
    result = train(cfg)
    return checkpoint.load(result.run_dir / "best.npz")


def test_a_seedless_sample_starts_after_a_line_break(tmp_path):
    ckpt = tiny_model(LINES, tmp_path)
    assert ckpt.char_counts is not None and sum(ckpt.char_counts) == len(LINES)
    vocab = Vocab(tuple(ckpt.vocab_chars))
    seedless = "".join(generate(ckpt.params, ckpt.cell, vocab, "", 30, rng=np.random.default_rng(3)))
    after_newline = "".join(generate(ckpt.params, ckpt.cell, vocab, "\n", 30, rng=np.random.default_rng(3)))
    assert seedless == after_newline  # the model read a line break first, and it is not shown


def test_without_line_breaks_the_first_character_follows_the_texts_frequencies(tmp_path):
    ckpt = tiny_model("abababababaaaaaaaaaaaaac" * 20, tmp_path, "ab")
    vocab = Vocab(tuple(ckpt.vocab_chars))
    counts = dict(zip(vocab.chars, ckpt.char_counts))
    assert counts["a"] > counts["b"] > counts["c"]
    firsts = [next(generate(ckpt.params, ckpt.cell, vocab, "", 1, rng=np.random.default_rng(s), char_counts=ckpt.char_counts))
              for s in range(300)]
    share = {ch: firsts.count(ch) / len(firsts) for ch in "abc"}
    assert abs(share["a"] - counts["a"] / sum(counts.values())) < 0.08  # drawn by frequency, not uniformly (1/3)
    greedy = next(generate(ckpt.params, ckpt.cell, vocab, "", 1, greedy=True, rng=np.random.default_rng(0),
                           char_counts=ckpt.char_counts))
    assert greedy == "a"  # greedy: the most frequent character


def test_checkpoints_refuse_damaged_char_counts(tmp_path):
    ckpt = tiny_model(LINES, tmp_path)
    ckpt.meta["char_counts"] = [1, 2]  # not one per symbol
    checkpoint.save(tmp_path / "bad.npz", ckpt)
    with pytest.raises(CharnnError, match="char_counts"):
        checkpoint.load(tmp_path / "bad.npz")


# ---- commands say which checkpoint they picked ------------------------------------------------


@pytest.fixture
def two_runs(tmp_path, monkeypatch):
    """runs/real (the user's model) and, written after it, runs/throwaway."""
    monkeypatch.chdir(tmp_path)
    for name in ("real", "throwaway"):
        (tmp_path / f"{name}.txt").write_text(LINES, encoding="utf-8")
        train(presets.for_text(tmp_path / f"{name}.txt", ["model.hidden_size=8", "model.num_layers=1", "train.steps=20",
                                                          "train.max_minutes=0", "run.eval_every=10"]))
    return tmp_path


@pytest.mark.parametrize("argv", [["sample", "-n", "5"], ["eval", "--split", "val"], ["info"],
                                  ["inspect-gradients", "--steps", "5", "--windows", "1"]])
def test_a_command_that_picks_a_checkpoint_says_which(two_runs, cli, argv):
    code, out, err = cli(*argv)
    assert code == 0, err
    said = [line for line in err.splitlines() if line.startswith("using ")]
    assert len(said) == 1 and str(Path("runs/throwaway/best.npz")) in said[0] and "validation loss" in said[0]
    assert "throwaway" not in out or argv[0] == "info"  # the results stay on stdout, the note on stderr
    code, out, err = cli(*argv, "--json")
    assert json.loads(out)["checkpoint"] == str(Path("runs/throwaway/best.npz"))


def test_a_given_checkpoint_is_not_announced(two_runs, cli):
    code, out, err = cli("sample", "-n", "5", "-c", "runs/real/best.npz")
    assert code == 0 and err == ""


def test_a_seed_error_names_the_checkpoint_it_came_from(two_runs, cli):
    code, out, err = cli("sample", "--seed", "The")
    assert code == 1 and one_line_error(err)
    assert "'T'" in err and str(Path("runs/throwaway/best.npz")) in err


def test_the_report_names_the_run_it_picked(two_runs, cli):
    pytest.importorskip("matplotlib")
    code, out, err = cli("report", "--text-chars", "100", "--units", "2")
    assert code == 0, err
    assert err.startswith(f"using {Path('runs/throwaway/best.npz')}")


# ---- resuming a finished run ---------------------------------------------------------------------


def test_resuming_a_finished_run_says_so_and_touches_nothing(story, cli):
    args = ["--data", story, "--set", "model.hidden_size=8", "model.num_layers=1", "train.steps=10",
            "train.max_minutes=0", "-q"]
    assert cli("train", *args)[0] == 0
    run = Path("runs/story")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir() if p.is_file()}
    code, out, err = cli("train", *args, "--resume", "--json")
    assert code == 0
    assert "already finished" in err and "train.steps=20" in err
    assert json.loads(out)["steps"] == 10
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in run.iterdir() if p.is_file()}
    assert after == before


def test_minutes_on_resume_add_time(story, cli):
    args = ["--data", story, "--set", "model.hidden_size=8", "model.num_layers=1", "train.steps=1000000000", "-q"]
    assert cli("train", *args, "--minutes", "0.01")[0] == 0
    code, out, err = cli("train", *args, "--resume")
    assert code == 0 and "already finished" in err and "--minutes M" in err
    trained = checkpoint.inspect(Path("runs/story/latest.npz"))[0]["elapsed_s"] / 60
    code, out, err = cli("train", *args, "--resume", "--minutes", "0.01", "--json")
    assert code == 0 and "already finished" not in err
    assert load_config(Path("runs/story/config.yaml")).train.max_minutes == pytest.approx(trained + 0.01)
    assert json.loads(out)["stopped"] == "time"


# ---- one verdict ------------------------------------------------------------------------------------


def test_inspect_gradients_and_the_report_give_one_verdict(two_runs, cli):
    pytest.importorskip("matplotlib")
    code, out, err = cli("inspect-gradients", "-c", "runs/real/best.npz", "--json")
    measured = json.loads(out)
    assert "8 random windows of T = 50 steps of the validation text" in measured["measured_on"]
    code, out, err = cli("report", "runs/real", "--json", "--text-chars", "100")
    page = (two_runs / "runs" / "real" / "report.html").read_text(encoding="utf-8")
    for layer in measured["layers"]:
        assert f"layer {layer['layer']}: {layer['verdict']}</b> (measured on {measured['measured_on']})" in page
    code, out, err = cli("inspect-gradients", "-c", "runs/real/best.npz")
    assert f"(measured on {measured['measured_on']})" in out


# ---- hints that point the right way ---------------------------------------------------------------


@pytest.mark.parametrize("section, key, expected", [
    ("train", "learning_rate", "'lr'"), ("model", "layers", "'num_layers'"), ("model", "hidden", "'hidden_size'"),
    ("train", "epochs", "'steps'"), ("train", "eval_every", "run.eval_every"), ("model", "seed", "run.seed"),
    ("train", "lr_sched", "'lr_schedule'"),
])
def test_did_you_mean_knows_synonyms_and_sections(section, key, expected):
    assert expected in key_hint(section, key)


def test_a_config_with_a_synonym_gets_the_right_key(tmp_path, cli):
    (tmp_path / "c.yaml").write_text("data: {text: hello}\ntrain: {learning_rate: 0.01}\n")
    code, _, err = cli("train", tmp_path / "c.yaml")
    assert code == 1 and one_line_error(err) and "did you mean 'lr'" in err and "decay_rate" not in err


def test_a_sweep_trial_key_in_another_section_is_named(tmp_path, cli):
    pytest.importorskip("optuna")
    (tmp_path / "base.yaml").write_text("data: {text: hello there}\n")
    (tmp_path / "sw.yaml").write_text("base: base.yaml\nspace: {train.lr: {low: 0.001, high: 0.01}}\n"
                                      "trial: {eval_every: 50}\n")
    code, _, err = cli("sweep", tmp_path / "sw.yaml")
    assert code == 1 and one_line_error(err) and "run.eval_every" in err and "decay_every" not in err


def test_set_with_a_space_instead_of_equals(cli):
    code, _, err = cli("train", "x.yaml", "--set", "train.lr", "0.01")
    assert code == 2 and one_line_error(err) and "--set train.lr=0.01" in err


def test_eval_of_a_latin1_file_says_what_fits_eval(two_runs, cli):
    (two_runs / "latin1.txt").write_bytes("café au lait\n".encode("latin-1"))
    code, _, err = cli("eval", "latin1.txt", "-c", "runs/real/best.npz")
    assert code == 1 and one_line_error(err) and "not valid UTF-8" in err
    assert "data.encoding" not in err and "iconv" in err


def test_hints_outside_the_checkout_name_only_what_is_there(tmp_path, monkeypatch, cli):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli("sample")
    assert code == 1 and one_line_error(err)
    assert "configs/hello.yaml" not in err and "charnn train --data" in err
    from charnn import hints

    assert hints.install("plot") == "pip install matplotlib"
    monkeypatch.chdir(ROOT)
    assert hints.install("plot") == "pip install -e '.[plot]'" and hints.train_first() == "charnn train configs/hello.yaml"


# ---- the report: steps as training counted them, units that really follow something -------------


def test_the_report_counts_the_steps_training_counted(story, cli):
    pytest.importorskip("matplotlib")
    code, out, err = cli("train", "--data", story, "--minutes", "0.03", "--set", "model.hidden_size=8",
                         "model.num_layers=1", "run.log_every=1000000", "--json", "-q")
    trained = json.loads(out)["steps"]
    assert 0 < trained < 1000000  # stopped on time, at a step no log line records
    code, out, err = cli("report", "runs/story", "--json", "--text-chars", "100")
    assert code == 0, err
    assert json.loads(out)["runs"][0]["steps"] == trained


def test_the_unit_picker_offers_only_units_that_follow_a_property():
    from charnn.analysis.report.reading import TextReading, pick_units

    text = 'say "hi" and "bye" now\n' * 4
    n = len(text)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(1, n, 3))
    reading = TextReading(text, noise, {}, np.zeros(n), np.zeros((n, 1), int), np.zeros((n, 1)), "rnn")
    assert pick_units(reading) == []  # noise correlates with nothing at |r| >= 0.3
    quotes = np.array([float(c) for c in "".join("01"[q] for q in _inside_quotes(text))])
    reading.units[0, :, 1] = quotes + 0.1 * noise[0, :, 1]
    picked = pick_units(reading)
    assert [p["unit"] for p in picked if p["property"] == "inside quotes"] == [1]
    assert all(abs(p["correlation"]) >= 0.3 for p in picked)


def _inside_quotes(text):
    inside, out = 0, []
    for ch in text:
        inside = 1 - inside if ch == '"' else inside
        out.append(inside)
    return out
