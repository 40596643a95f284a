"""Config loading: defaults, overrides, and errors that name the dotted key and the file."""

import pytest

from charnn.config import Config, to_dict
from charnn.settings import load_config
from charnn.errors import CharnnError


def test_defaults_fill_everything_and_name_comes_from_file(write_config):
    cfg = load_config(write_config("data:\n  text: abc\n", name="tiny.yaml"))
    assert cfg.run.name == "tiny" and cfg.train.optimizer == "adam" and cfg.model.dtype == "float32"
    assert set(to_dict(cfg)) == {"data", "model", "train", "sample", "run"}


def test_data_path_is_relative_to_the_config_file(write_config, tmp_path):
    cfg = load_config(write_config())
    assert cfg.data.path == str(tmp_path / "corpus.txt")


def test_overrides_are_typed_and_validated(write_config):
    path = write_config()
    cfg = load_config(path, ["train.lr=3e-3", "model.hidden_size=7", "train.nesterov=true"])
    assert cfg.train.lr == 0.003 and cfg.model.hidden_size == 7 and cfg.train.nesterov is True
    with pytest.raises(CharnnError, match="expected section.key=value"):
        load_config(path, ["train.lr"])


@pytest.mark.parametrize("item, message", [
    ("train.lr=-1", "must be > 0"),
    ("train.lr=fast", "expected a number, got 'fast'"),
    ("model.hidden_size=12.5", "expected an integer"),
    ("train.lrr=1", r"unknown key \(did you mean 'lr'\?\)"),
    ("model.init=ortho", "'ortho' is not one of"),
])
def test_override_errors_name_the_command_line_not_the_file(write_config, item, message):
    path = write_config()
    with pytest.raises(CharnnError, match=message) as err:
        load_config(path, [item])
    assert str(err.value).startswith(f"--set {item}: ") and str(path) not in str(err.value)


def test_whole_numbers_in_exponent_notation_are_integers(write_config):
    cfg = load_config(write_config(), ["model.hidden_size=1e3", "train.steps=2e4"])
    assert cfg.model.hidden_size == 1000 and cfg.train.steps == 20000


def test_override_of_data_source_replaces_the_files_source(write_config, tmp_path):
    cfg = load_config(write_config("data:\n  url: http://x/y.txt\n  sha256: abc\n"), ["data.path=other.txt"])
    assert cfg.data.url is None and cfg.data.path.endswith("other.txt")


@pytest.mark.parametrize(
    "body, message",
    [
        ("data:\n  text: a\ntrain:\n  stesp: 3\n", r"train.stesp: unknown key \(did you mean 'steps'\?\)"),
        ("data:\n  text: a\nmodle:\n  cell: rnn\n", r"modle: unknown section \(did you mean 'model'\?\)"),
        ("data:\n  text: a\nmodel:\n  hidden_size: big\n", "model.hidden_size: expected an integer"),
        ("data:\n  text: a\nmodel:\n  hidden_size: 0\n", "model.hidden_size: must be >= 1"),
        ("data:\n  text: a\nmodel:\n  init: ortho\n", "model.init: 'ortho' is not one of"),
        ("data:\n  text: a\nmodel:\n  weight_drop: 1.0\n", r"model.weight_drop: must be in \[0, 1\)"),
        ("data:\n  text: a\nmodel:\n  input_dropout: -0.1\n", r"model.input_dropout: must be in \[0, 1\)"),
        ("data:\n  text: a\nmodel:\n  dropout_mode: variational\n", "model.dropout_mode: 'variational' is not one of"),
        ("data:\n  text: a\nmodel:\n  gate_init: chrono\n", "model.gate_init: chrono initialises gate biases"),
        ("data:\n  text: a\nmodel:\n  cell: lstm\n  gate_init: chrono\n  chrono_max: 1\n", "model.chrono_max: must be >= 2"),
        ("data:\n  text: a\ntrain:\n  grad_clip: -1\n", "train.grad_clip"),
        ("data:\n  text: a\nsample:\n  temperature: 0\n", "sample.temperature: must be > 0"),
        ("data:\n  text: a\n  path: b.txt\n", "give exactly one of data.path, data.text or data.url"),
        ("data:\n  url: http://x\n", "data.sha256: a data.url needs its sha256"),
        ("data:\n  text: a\n  val_fraction: 0.6\n  test_fraction: 0.5\n", "data.val_fraction"),
        ("data:\n  text: a\ntrain:\n  nesterov: 1\n", "train.nesterov: expected true or false"),
        ("data:\n  text: a\ntrain: [1, 2]\n", "train: expected a mapping"),
        ("- just\n- a list\n", "the config must be a mapping"),
    ],
)
def test_bad_configs_name_the_file_and_key(write_config, body, message):
    path = write_config(body)
    with pytest.raises(CharnnError, match=message) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_malformed_yaml_gives_the_line(write_config):
    path = write_config("data:\n  text: a\nmodel: [unclosed\n")
    with pytest.raises(CharnnError, match=r"malformed YAML at line \d+"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(CharnnError, match="not found"):
        load_config(tmp_path / "nope.yaml")


def test_configs_shipped_with_the_project_load():
    from pathlib import Path

    for path in sorted(Path(__file__).parent.parent.joinpath("configs").glob("*.yaml")):
        assert isinstance(load_config(path), Config)
