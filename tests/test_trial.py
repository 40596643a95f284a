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
    code, out, err = cli("train", "--data", "l.txt", "--set", "data.encoding=bytes", "train.steps=20", "-q", "--json")
    assert code == 0, err
    assert load_config(Path("runs/l/config.yaml")).model.num_layers == 1


def test_a_latin1_text_names_the_command_line_setting(here, cli):
    (here / "l.txt").write_bytes(LATIN1[:2000])
    code, out, err = cli("train", "--data", "l.txt")
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
