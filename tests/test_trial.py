"""A second new-user trial of the first hour: Latin-1 text, the live bar, resuming with --minutes,
which run is the most recent, help texts and hints. Each test failed before the change it guards."""

import json
from pathlib import Path

import pytest

from charnn import presets
from charnn.settings import load_config
from conftest import one_line_error

LATIN1 = ("Très bien, ça va. Où est la gare? À côté du café, près de l'hôtel.\n" * 40).encode("latin-1")


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A user's own folder (not the repository), with runs/ written into it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


# ---- 1. Latin-1 text: bytes mode is sized to the text, errors name the flag ----------------------


def test_bytes_mode_sizes_the_preset_by_the_files_bytes(here):
    (here / "l.txt").write_bytes(LATIN1[:2000])
    cfg = presets.for_text(here / "l.txt", ["data.encoding=bytes"])
    assert cfg.model.hidden_size == 64 and cfg.train.batch_size == 8  # the small-text rule, as for UTF-8


def test_a_short_latin1_text_trains_in_bytes_mode(here, cli):
    (here / "l.txt").write_bytes(LATIN1[:2000])
    code, _, err = cli("train", "--data", "l.txt", "--set", "data.encoding=bytes", "train.steps=20", "-q", "--json")
    assert code == 0, err
    assert load_config(Path("runs/l/config.yaml")).model.num_layers == 1


def test_a_batch_too_big_for_the_text_names_the_flag_not_the_preset_file(here, cli):
    (here / "l.txt").write_bytes(LATIN1[:2000])
    code, _, err = cli("train", "--data", "l.txt", "--set", "data.encoding=bytes", "train.seq_len=5000")
    assert code == 1 and "--set train.seq_len=5000: train.batch_size x train.seq_len" in err
    assert "text.yaml" not in err


def test_a_latin1_text_names_the_command_line_setting(here, cli):
    (here / "l.txt").write_bytes(LATIN1[:2000])
    code, _, err = cli("train", "--data", "l.txt")
    assert code == 1 and one_line_error(err.split("\n", 1)[-1])
    assert "--set data.encoding=bytes" in err and "data.encoding: bytes" not in err


def test_train_and_eval_word_the_same_problems_alike(here, cli):
    (here / "ok.txt").write_text("hello there\n" * 20, encoding="utf-8")
    assert cli("train", "--data", "ok.txt", "--set", "train.steps=5", "-q")[0] == 0
    (here / "l.txt").write_bytes("café\n".encode("latin-1"))
    (here / "empty.txt").write_bytes(b"")
    for name, problem in (("l.txt", "is not valid UTF-8 (bad byte 0xe9 at byte offset 3); "),
                          ("empty.txt", "is empty; give a text of at least 2 characters")):
        said = [cli("train", "--data", name, "--force")[2], cli("eval", name, "-c", "runs/ok/best.npz")[2]]
        assert all(problem in err for err in said), said


# ---- 2, 7, 9: progress: no stale bar, no wrapping, bounded and consistent plain lines -------------


def _in_a_terminal(argv, cwd):
    """Run `python -m charnn ARGV` with a pseudo-terminal as stdin, stdout and stderr; all it wrote."""
    import os
    import pty
    import select
    import subprocess
    import sys

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "charnn", *argv], stdin=slave, stdout=slave, stderr=slave,
                            cwd=cwd, env=dict(os.environ, TERM="xterm", COLUMNS="100"))
    os.close(slave)
    out = b""
    while select.select([master], [], [], 60)[0]:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait(timeout=60) == 0, out.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


def test_the_live_bar_is_gone_before_the_summary(here):
    (here / "story.txt").write_text("the cat sat on the mat.\n" * 120, encoding="utf-8")
    shown = _in_a_terminal(["train", "--data", "story.txt", "--set", "model.hidden_size=8", "train.steps=200"], here)
    assert "eta" in shown  # the bar was drawn ...
    assert "eta" not in shown.split("training summary", 1)[1]  # ... and not left behind below the summary


def test_the_python_api_does_not_wrap_its_progress(here, capsys, monkeypatch):
    import charnn

    monkeypatch.setenv("COLUMNS", "80")
    name = "a-run-with-a-rather-long-name-" * 3
    cfg = {"data": {"text": "hello there\n" * 50}, "model": {"hidden_size": 8},
           "train": {"batch_size": 2, "seq_len": 8, "steps": 5}, "run": {"name": name}}
    charnn.train(cfg)
    err = capsys.readouterr().err
    assert any(line.startswith("training ") and line.endswith("val characters") for line in err.splitlines()), err


def test_plain_progress_is_bounded_and_says_one_val_per_step(here, cli):
    (here / "story.txt").write_text("the cat sat on the mat.\nthe dog sat on the log.\n" * 30, encoding="utf-8")
    code, out, err = cli("train", "--data", "story.txt", "--set", "model.hidden_size=8", "run.log_every=5", "--json")
    assert code == 0, err
    steps = [line for line in err.splitlines() if line.startswith("step ")]
    assert 2 <= len(steps) <= 4, err  # the first logged step, the last one, and one every 5 s between
    assert steps[-1].startswith(f"step {json.loads(out)['steps']}: ") and "val " in steps[-1]
    assert len({line.split(":")[0] for line in steps}) == len(steps)  # one line per step: no second val


def test_a_plain_line_shows_the_validation_loss_of_its_own_step():
    import io

    from rich.console import Console

    from charnn.api.progress import TrainProgress

    console = Console(file=io.StringIO(), width=80)
    shown = TrainProgress(console)
    step = {"smooth_loss": 3.787, "grad_norm": 1.0, "clipped": False, "chars_per_s": 1000.0}
    shown.on_start({"resumed": False, "run_dir": "runs/x", "params": 1, "vocab_size": 2, "train_chars": 9,
                    "val_chars": 1, "max_minutes": 0, "steps": 20, "start_step": 0})
    shown.on_eval({"step": 5, "val_loss": 3.753, "val_bpc": 5.41})
    shown.on_step(dict(step, step=10))
    shown.on_eval({"step": 10, "val_loss": 3.7278, "val_bpc": 5.378})
    shown.on_step(dict(step, step=20))  # within 5 s of the last line: not printed now ...
    shown.close()  # ... but as the last one
    lines = console.file.getvalue().splitlines()[1:]
    assert [line.split(" |g|")[0] for line in lines] == ["step 10: loss 3.787 val 3.728 (5.38 bpc)",
                                                         "step 20: loss 3.787 val 3.728 (5.38 bpc)"]


# ---- 3. --resume --minutes on a run that stopped on its step count -------------------------------


def test_minutes_on_a_step_limited_run_say_they_add_time_not_steps(here, cli):
    import os

    (here / "story.txt").write_text("the cat sat on the mat.\n" * 60, encoding="utf-8")
    args = ["--data", "story.txt", "--set", "model.hidden_size=8", "train.steps=10", "-q"]
    assert cli("train", *args)[0] == 0
    code, out, err = cli("train", *args, "--resume", "--minutes", "1", "--json")
    assert code == 0 and json.loads(out)["steps"] == 10  # a step limit stays: the schedule is laid over it
    assert "adds time, not steps" in err and "--set train.steps=20" in err
    os.environ["COLUMNS"] = "300"
    try:
        helped = cli("train", "--help")[1]
    finally:
        del os.environ["COLUMNS"]
    docs = Path(__file__).parent.parent / "docs"
    for text in (helped, (docs / "commands.md").read_text(), (docs / "troubleshooting.md").read_text()):
        assert "adds time, not steps" in text and "--set train.steps=N" in text


# ---- 4. the most recent run is the one active last ---------------------------------------------------


def test_the_most_recent_run_is_the_one_that_trained_last(tmp_path):
    import os

    from charnn.training import checkpoint

    for name, best, latest in (("a", 100, 0), ("b", 50, 50)):  # a was resumed last; its best did not improve
        for file, age in (("best.npz", best), ("latest.npz", latest)):
            (tmp_path / name).mkdir(exist_ok=True)
            (tmp_path / name / file).write_bytes(b"")
            os.utime(tmp_path / name / file, (1e9 - age, 1e9 - age))
    assert checkpoint.most_recent(tmp_path) == tmp_path / "a" / "best.npz"
    assert checkpoint.most_recent(tmp_path, "latest.npz") == tmp_path / "a" / "latest.npz"


# ---- 5, 11. help texts: square brackets shown, no files that only a source checkout has ----------


def _commands():
    """(argv, click command) of every command of the app, groups included."""
    import typer.main

    from charnn.cli.app import app

    def walk(command, argv):
        yield argv, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, argv + [name])

    return list(walk(typer.main.get_command(app), []))


def _help(cli, argv):
    import os

    os.environ["COLUMNS"] = "1000"  # one line per paragraph: nothing is split across lines
    try:
        return cli(*argv, "--help")[1]
    finally:
        del os.environ["COLUMNS"]


def test_help_shows_every_square_bracket(cli):
    import re

    for argv, command in _commands():
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        wanted = {m for text in texts for m in re.findall(r"\[[^\]\s]+\]", text.replace("\\[", "["))}
        shown = _help(cli, argv)
        assert all(m in shown for m in wanted), (argv, wanted)


def test_help_names_no_file_of_a_source_checkout(cli):
    for argv, command in _commands():
        shown = _help(cli, argv)
        assert "configs/" not in shown and "data/" not in shown, argv


# ---- 6, 8. hints and messages name what exists for the command ------------------------------------


@pytest.mark.parametrize("argv, said", [
    (["info"], "or give one: charnn info CHECKPOINT"),
    (["sample"], "or give one: --checkpoint PATH"),
])
def test_no_run_to_pick_names_how_the_command_takes_a_checkpoint(here, cli, argv, said):
    code, _, err = cli(*argv)
    assert code == 1 and one_line_error(err) and said in err and "train first" in err


@pytest.mark.parametrize("argv", [["info", "nothing.npz"], ["sample", "-c", "nothing.npz"]])
def test_a_missing_checkpoint_given_by_name_says_check_the_path(here, cli, argv):
    code, _, err = cli(*argv)
    assert code == 1 and one_line_error(err)
    assert "nothing.npz not found; check the path" in err and "train first" not in err


def test_a_file_that_is_no_zip_is_not_a_charnn_checkpoint(here, cli):
    (here / "poem.txt").write_text("roses are red\n")
    code, _, err = cli("info", "poem.txt")
    assert code == 1 and one_line_error(err) and "poem.txt is not a charnn checkpoint" in err
    assert "truncated" not in err


@pytest.mark.parametrize("argv, said, code", [
    (["train", "--data", "story.txt", "--set", "train.lr="], "--set train.lr=: the value is empty; give a number", 1),
    (["train", "--data", "missing.txt"], "text file missing.txt not found; check the path given as --data", 1),
    (["train", "--resume", "runs/nonexist"], "run directory runs/nonexist not found", 1),
    (["train", "--resume"], "charnn train --resume RUN_DIR", 2),
])
def test_training_messages_name_what_the_user_gave(here, cli, argv, said, code):
    (here / "story.txt").write_text("the cat sat on the mat.\n" * 20, encoding="utf-8")
    got, _, err = cli(*argv)
    assert got == code and one_line_error(err) and said in err, err


def test_one_character_is_one_character(here, cli):
    (here / "story.txt").write_text("the cat sat on the mat.\n" * 20, encoding="utf-8")
    assert cli("train", "--data", "story.txt", "--set", "train.steps=5", "-q")[0] == 0
    (here / "z.txt").write_text("the Zebra\n", encoding="utf-8")
    code, _, err = cli("eval", "z.txt")
    assert code == 1 and "has 3 characters outside" in err  # Z, b and r
    (here / "z.txt").write_text("the cat Zat\n", encoding="utf-8")
    code, _, err = cli("eval", "z.txt")
    assert code == 1 and "has 1 character outside" in err


def test_a_note_of_one_mapped_character_is_singular(capsys):
    from charnn.cli.core import note_mapped

    note_mapped(1, "--seed")
    assert "note: 1 character of --seed is outside the vocabulary" in capsys.readouterr().err
