"""The command line as a user meets it: exit codes, stdout vs stderr, one-line errors."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import assert_one_line_error, run

ROOT = Path(__file__).parent.parent




@pytest.fixture(scope="module")
def hello_dir(tmp_path_factory):
    """A folder holding runs/hello, trained once for the whole module (the tests only read it)."""
    from charnn.settings import load_config
    from charnn.training.loop import train

    folder = tmp_path_factory.mktemp("hello")
    train(load_config(ROOT / "configs" / "hello.yaml", [f"run.dir={folder / 'runs'}"]))
    return folder


@pytest.fixture
def hello_run(hello_dir, monkeypatch):
    monkeypatch.chdir(hello_dir)  # `charnn sample` finds the most recent run under ./runs
    return hello_dir / "runs" / "hello"


def test_train_then_sample_hello(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "train", ROOT / "configs" / "hello.yaml")
    assert code == 0, err
    code, out, err = run(capsys, "sample", "--seed", "h", "--greedy")
    assert code == 0 and out.startswith("hello")
    # the checkpoint it picked by itself is named in one stderr line, never on stdout
    assert err.startswith("using runs/hello/best.npz") and len(err.splitlines()) == 1
    assert len(out) == len("h") + 20 + 1  # seed, the config's sample.length, newline


def test_train_writes_summary_to_stderr_only(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "train", ROOT / "configs" / "hello.yaml", "--set", "train.steps=5")
    assert code == 0 and out == "" and "training summary" in err


def test_sample_options(hello_run, capsys):
    code, out, _ = run(capsys, "sample", "--rng-seed", "3", "-n", "30", "--num-samples", "2", "--temperature", "2")
    samples = re.split(r"^--- sample \d+ of 2 ---\n", out, flags=re.M)
    assert code == 0 and len(samples) == 2 and all(len(x) == 31 for x in samples)
    again = run(capsys, "sample", "--rng-seed", "3", "-n", "30", "--num-samples", "2", "--temperature", "2")[1]
    assert again == out
    code, out, _ = run(capsys, "sample", "--checkpoint", hello_run / "latest.npz", "--top-k", "1", "-s", "he", "-n", "3")
    assert code == 0 and out == "hello\n"


def test_eval_json_and_table(hello_run, tmp_path, capsys):
    (tmp_path / "t.txt").write_text("hello")
    code, out, _ = run(capsys, "eval", tmp_path / "t.txt", "--json")
    result = json.loads(out)
    assert code == 0 and set(result) == {"nats_per_char", "bits_per_char", "perplexity", "chars", "checkpoint"}
    assert result["chars"] == 4 and result["nats_per_char"] < 0.05
    assert result["checkpoint"] == str(Path("runs") / "hello" / "best.npz")
    code, out, _ = run(capsys, "eval", tmp_path / "t.txt")
    assert code == 0 and "bits/char" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sample", "--seed", "hx"], "outside the model's vocabulary: 'x'"),
        (["sample", "--temperature", "0"], "temperature must be > 0"),
        (["sample", "--top-k", "-1"], "top-k must be >= 0"),
        (["sample", "--length", "-1"], "length must be >= 0"),
        (["sample", "--checkpoint", "missing.npz"], "not found"),
        (["eval", "missing.txt"], "not found"),
        (["train", "configs/hello.yaml"], "already exists"),
    ],
)
def test_runtime_errors_are_one_line_exit_1(hello_run, tmp_path, capsys, argv, message):
    if argv[:2] == ["train", "configs/hello.yaml"]:
        argv = ["train", ROOT / "configs" / "hello.yaml"]
    code, out, err = run(capsys, *argv)
    assert code == 1 and out == "" and message in err
    assert_one_line_error(err)


def test_eval_text_outside_vocabulary_lists_characters(hello_run, tmp_path, capsys):
    (tmp_path / "t.txt").write_text("hello world")
    code, _, err = run(capsys, "eval", tmp_path / "t.txt")
    assert code == 1 and "' '" in err and "'w'" in err
    assert_one_line_error(err)


def test_binary_and_empty_text(hello_run, tmp_path, capsys):
    (tmp_path / "bin.txt").write_bytes(b"hel\xff\xfelo")
    code, _, err = run(capsys, "eval", tmp_path / "bin.txt")
    assert code == 1 and "byte offset 3" in err
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "e.yaml").write_text("data:\n  path: empty.txt\n")
    code, _, err = run(capsys, "train", tmp_path / "e.yaml")
    assert code == 1 and "empty" in err
    assert_one_line_error(err)


def test_truncated_checkpoint(hello_run, tmp_path, capsys):
    data = (hello_run / "best.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[:100])
    code, _, err = run(capsys, "sample", "--checkpoint", tmp_path / "cut.npz")
    assert code == 1 and "truncated or corrupted" in err
    assert_one_line_error(err)


def test_sample_without_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "sample")
    assert code == 1 and "train first" in err


@pytest.mark.parametrize(
    "body, message",
    [
        ("data:\n  text: hello\nmodel:\n  hiden_size: 3\n", "did you mean 'hidden_size'"),
        ("data:\n  text: [\n", "malformed YAML at line"),
        ("data:\n  path: nowhere.txt\n", "nowhere.txt not found"),
    ],
)
def test_bad_configs(tmp_path, capsys, body, message):
    (tmp_path / "c.yaml").write_text(body)
    code, _, err = run(capsys, "train", tmp_path / "c.yaml")
    assert code == 1 and message in err
    assert_one_line_error(err)


def test_usage_errors_exit_2_in_one_line(capsys):
    code, _, err = run(capsys, "sample", "--bogus")
    assert code == 2 and "--bogus" in err
    assert_one_line_error(err)
    code, _, err = run(capsys, "train")
    assert code == 2
    assert_one_line_error(err)


def test_help_and_version(capsys):
    for command in ("train", "sample", "eval"):
        code, out, _ = run(capsys, command, "--help")
        assert code == 0 and "Example: charnn" in out
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("charnn ")


def test_python_dash_m_and_nonzero_exit_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "charnn", "sample", "--checkpoint", str(tmp_path / "x.npz")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == "" and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_inspect_gradients_json_from_a_run_and_from_a_config(hello_run, capsys):
    code, out, err = run(capsys, "inspect-gradients", "--text", "hellohello", "--steps", "6", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["layers"][0]["lag"] == list(range(6)) and report["clip_fraction"] is not None
    code, out, _ = run(capsys, "inspect-gradients", "--config", ROOT / "configs" / "demo.yaml",
                       "--init-std", "0.01", "--steps", "20", "--windows", "2", "--json")
    assert code == 0 and json.loads(out)["layers"][0]["verdict"] == "vanishing"


def test_inspect_gradients_table_and_check(hello_run, capsys):
    code, out, _ = run(capsys, "inspect-gradients", "--text", "hellohello", "--steps", "6", "--check")
    assert code == 0 and "memory horizon" in out and "finite-difference check" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--steps", "1", "--text", "hello"], "--steps must be >= 2"),
        (["--steps", "20", "--text", "hello"], "fewer than --steps + 1"),
        (["--steps", "3", "--text", "hexlo"], "outside the model's vocabulary: 'x'"),
        (["--init-std", "1.0"], "--init-std applies to a fresh model"),
    ],
)
def test_inspect_gradients_bad_input(hello_run, capsys, argv, message):
    code, _, err = run(capsys, "inspect-gradients", *argv)
    assert code == 1 and message in err
    assert_one_line_error(err)


def test_inspect_gradients_without_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "inspect-gradients")
    assert code == 1 and "--config" in err and "--checkpoint" in err
    assert_one_line_error(err)


def test_inspect_gradients_plot(hello_run, tmp_path, capsys):
    for name in ("g.png", "g.svg"):  # matplotlib is in the test extra: the picture is really drawn
        argv = ["inspect-gradients", "--text", "hellohello", "--steps", "6", "--plot", tmp_path / name]
        code, _, err = run(capsys, *argv)
        assert code == 0, err
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "lag k (steps back)" in svg


def test_plot_without_matplotlib_names_the_extra(hello_run, tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name.startswith("matplotlib") else real_import(name, *a, **k))
    code, _, err = run(capsys, "inspect-gradients", "--text", "hellohello", "--steps", "6", "--plot", tmp_path / "g.png")
    assert code == 1 and "pip install matplotlib" in err  # outside a checkout there is no '.[plot]' to name
    assert_one_line_error(err)
    monkeypatch.chdir(ROOT)  # in the source checkout, the extra
    code, _, err = run(capsys, "inspect-gradients", "-c", hello_run / "best.npz", "--text", "hellohello", "--steps", "6",
                       "--plot", tmp_path / "g.png")
    assert code == 1 and "pip install -e '.[plot]'" in err
    assert_one_line_error(err)


def test_ctrl_c_in_a_real_process_saves_and_resumes(write_config, tmp_path):
    import signal
    import time

    from charnn.training import checkpoint

    config = write_config()
    cmd = [sys.executable, "-m", "charnn", "train", str(config), "--set", "train.steps=1000000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    metrics = tmp_path / "runs" / "exp" / "metrics.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err
    step = checkpoint.load(tmp_path / "runs" / "exp" / "latest.npz").meta["step"]
    assert step >= 3
    last_two = err.splitlines()[-2:]  # as the docs describe them
    assert last_two[0].startswith(f"error: interrupted at step {step}; saved ") and last_two[1].startswith("Resume with: ")
    for page in ("commands.md", "troubleshooting.md"):
        said = (ROOT / "docs" / page).read_text(encoding="utf-8")
        assert "`error: interrupted at step N; saved RUN_DIR/latest.npz`" in said and "`Resume with: " in said
    resume = [sys.executable, "-m", "charnn", "train", str(config), "--resume", "--set", f"train.steps={step + 3}"]
    done = subprocess.run(resume, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert checkpoint.load(tmp_path / "runs" / "exp" / "latest.npz").meta["step"] == step + 3


def test_bytes_mode_round_trip(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_bytes(("naïve café " * 40).encode())
    (tmp_path / "b.yaml").write_text(
        "data:\n  path: t.txt\n  encoding: bytes\n  val_fraction: 0\nmodel:\n  hidden_size: 48\n"
        "train:\n  batch_size: 4\n  seq_len: 16\n  steps: 300\n  lr: 0.01\nrun:\n  eval_every: 0\n"
    )
    code, _, err = run(capsys, "train", tmp_path / "b.yaml", "-q")
    assert code == 0, err
    code, out, _ = run(capsys, "sample", "--seed", "naï", "--greedy", "-n", "13")  # 13 bytes end on a whole character
    assert code == 0 and out.startswith("naïve café")
    code, out, _ = run(capsys, "eval", tmp_path / "t.txt", "--json")
    assert code == 0 and json.loads(out)["chars"] == len(("naïve café " * 40).encode()) - 1


def test_data_prepare_summary(tmp_path, write_config, capsys):
    config = write_config()
    code, out, err = run(capsys, "data", "prepare", config, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["chars"] == 384 and not summary["reused"] and summary["vocab_size"] == 14
    code, out, err = run(capsys, "data", "prepare", config)
    assert code == 0 and "reused" in out and "reusing" in err


def test_negative_rng_seed_is_a_usage_error(capsys):
    code, _, err = run(capsys, "sample", "--rng-seed", "-1")
    assert code == 2
    assert_one_line_error(err)


def test_run_directory_that_is_a_file(tmp_path, write_config, capsys):
    (tmp_path / "occupied").write_text("x")
    code, _, err = run(capsys, "train", write_config(), "--run-dir", tmp_path / "occupied", "-q")
    assert code == 1 and "occupied" in err
    assert_one_line_error(err)


def test_set_into_a_section_that_is_not_a_mapping(tmp_path, capsys):
    (tmp_path / "c.yaml").write_text("data:\n  text: hello\ntrain: 5\n")
    code, _, err = run(capsys, "train", tmp_path / "c.yaml", "--set", "train.lr=0.1")
    assert code == 1 and "train: expected a mapping" in err
    assert_one_line_error(err)


def test_error_text_with_brackets_is_printed_verbatim(tmp_path, capsys):
    code, _, err = run(capsys, "sample", "--checkpoint", tmp_path / "[draft]" / "c.npz")
    assert code == 1 and "[draft]" in err


def test_rare_characters_map_to_the_replacement_symbol(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("abab" * 60 + "z")
    (tmp_path / "m.yaml").write_text(
        "data:\n  path: t.txt\n  min_char_count: 2\n  val_fraction: 0\nmodel:\n  hidden_size: 8\n"
        "train:\n  batch_size: 2\n  seq_len: 8\n  steps: 5\n"
    )
    assert run(capsys, "train", tmp_path / "m.yaml", "-q")[0] == 0
    (tmp_path / "e.txt").write_text("abzqab")
    code, out, err = run(capsys, "eval", tmp_path / "e.txt", "--json")
    assert code == 0 and json.loads(out)["chars"] == 5 and "2 characters" in err
