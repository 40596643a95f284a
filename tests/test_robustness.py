"""Tried as a demanding user would (issue #10): several processes, pipes, huge files, runaway runs.

Each test here failed before the change it guards.
"""

import http.server
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from charnn.training import checkpoint
from charnn.data import sources as corpus
from charnn.nn import model
from charnn.nn import optim
from charnn.settings import load_config
from charnn.errors import CharnnError
from charnn.nn.evaluate import evaluate_ids
from charnn.training.loop import TrainingDiverged, train
from conftest import one_line_error, run

ROOT = Path(__file__).parent.parent
CHARNN = [sys.executable, "-m", "charnn"]




@pytest.fixture(scope="module")
def hello(tmp_path_factory):
    """A trained hello model, shared by the tests of this module (they only read it)."""
    folder = tmp_path_factory.mktemp("hello")
    result = train(load_config(ROOT / "configs" / "hello.yaml", [f"run.dir={folder}"]))
    return result.run_dir / "best.npz"


# ---- 2. the resume hint resumes this run --------------------------------------------------------


def wait_for_lines(path, count, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline and not (path.exists() and path.read_text().count("\n") >= count):
        time.sleep(0.05)


def test_ctrl_c_hint_resumes_exactly_the_run_with_overrides(write_config, tmp_path):
    config = write_config()
    cmd = CHARNN + ["train", str(config), "--set", "run.name=part", "train.steps=1000000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    wait_for_lines(tmp_path / "runs" / "part" / "metrics.jsonl", 3)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    hint = [line for line in err.splitlines() if line.startswith("Resume with: ")]
    assert hint == [f"Resume with: charnn train --resume {tmp_path / 'runs' / 'part'}"], err
    step = checkpoint.load(tmp_path / "runs" / "part" / "latest.npz").meta["step"]
    resume = shlex.split(hint[0][len("Resume with: charnn "):]) + ["--set", f"train.steps={step + 2}"]
    done = subprocess.run(CHARNN + resume, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert checkpoint.load(tmp_path / "runs" / "part" / "latest.npz").meta["step"] == step + 2
    assert not (tmp_path / "runs" / "exp").exists()  # the config's own run was never started


def test_resume_with_a_config_that_does_not_match_the_run_says_which_key(write_config, tmp_path, capsys):
    config = write_config()
    assert run(capsys, "train", config, "--set", "train.steps=5", "-q")[0] == 0
    code, _, err = run(capsys, "train", config, "--resume", "--set", "model.hidden_size=20", "-q")
    assert code == 1 and "model.hidden_size=12" in err and "charnn train --resume" in err and one_line_error(err)


def test_a_run_directory_is_resumable_by_itself(write_config, tmp_path, capsys):
    assert run(capsys, "train", write_config(), "--set", "train.steps=5", "run.name=r", "-q")[0] == 0
    code, out, err = run(capsys, "train", "--resume", tmp_path / "runs" / "r", "--set", "train.steps=8", "--json")
    assert code == 0 and json.loads(out)["steps"] == 8, err
    code, _, err = run(capsys, "train", tmp_path / "runs" / "r")
    assert code == 1 and "charnn train --resume" in err and one_line_error(err)
    code, _, err = run(capsys, "train", "--resume", tmp_path)
    assert code == 1 and "not a run directory" in err and one_line_error(err)


# ---- 3 and 4. runs that go bad ------------------------------------------------------------------------


def test_no_checkpoint_is_ever_written_with_nan_weights(write_config, tmp_path, capsys):
    config = write_config()
    code, _, err = run(capsys, "train", config, "--set", "train.optimizer=sgd", "train.lr=1e30",
                       "run.checkpoint_every=1", "-q")
    assert code == 1 and one_line_error(err) and "kept" in err
    for name in ("latest.npz", "best.npz"):
        path = tmp_path / "runs" / "exp" / name
        if path.exists():
            ckpt = checkpoint.load(path)  # refuses non-finite weights
            assert all(np.all(np.isfinite(a)) for a in ckpt.optim_state.values())


def test_an_update_that_makes_the_weights_nan_is_never_saved(write_config, monkeypatch):
    cfg = load_config(write_config(), ["run.checkpoint_every=1"])
    real_update = optim.apply_update
    calls = {"n": 0}

    def poisoned_update(spec, params, grads, state, lr):
        real_update(spec, params, grads, state, lr)
        calls["n"] += 1
        if calls["n"] == 4:
            params["head.b_y"][0] = np.nan

    monkeypatch.setattr("charnn.training.loop.apply_update", poisoned_update)
    with pytest.raises(TrainingDiverged, match="update of step 4 made the model non-finite") as stopped:
        train(cfg)
    saved = checkpoint.load(Path(cfg.run.dir) / "exp" / "latest.npz")
    assert saved.meta["step"] == 3 and stopped.value.result.step == 4


def test_a_finite_runaway_loss_stops_the_run(write_config, tmp_path, capsys):
    code, out, err = run(capsys, "train", write_config(), "--set", "train.optimizer=sgd", "train.lr=1000",
                         "train.grad_clip=0", "train.steps=500", "--json", "-q")
    assert code == 1 and one_line_error(err) and "loss ran away" in err and "lower train.lr" in err
    assert json.loads(out)["stopped"] == "diverged" and json.loads(out)["steps"] < 500


# ---- 5 and 6. resuming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("key, value", [("train.seq_len", 4), ("train.batch_size", 3)])
def test_resume_refuses_a_changed_chunk_shape_naming_the_key(write_config, tmp_path, key, value):
    config = write_config()
    train(load_config(config, ["train.steps=5"]), tmp_path / "r")
    with pytest.raises(CharnnError, match=f"trained with {re.escape(key)}=") as err:
        train(load_config(config, [f"{key}={value}"]), tmp_path / "r", resume=True)
    assert "charnn train --resume" in str(err.value)


def test_stale_temporaries_are_cleaned_at_the_next_start(write_config, tmp_path):
    config = write_config()
    train(load_config(config, ["train.steps=5"]), tmp_path / "r")
    stale = [tmp_path / "r" / ".latest.npz.x1y2.tmp", tmp_path / "r" / ".best.npz.abc.tmp"]
    for path in stale:
        path.write_bytes(b"half a checkpoint")
    train(load_config(config, ["train.steps=7"]), tmp_path / "r", resume=True)
    assert not any(path.exists() for path in stale)


def test_two_processes_never_train_into_one_run_directory(write_config, tmp_path):
    config = write_config()
    cmd = CHARNN + ["train", str(config), "--set", "train.steps=1000000", "-q"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    wait_for_lines(tmp_path / "runs" / "exp" / "metrics.jsonl", 2)
    second = subprocess.run(cmd + ["--force"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert second.returncode == 1 and "in use by another charnn process" in second.stderr
    assert checkpoint.load(tmp_path / "runs" / "exp" / "latest.npz").meta["step"] >= 2


# ---- 7. eval streams ---------------------------------------------------------------------------------------


def test_evaluation_reads_a_memmap_chunk_by_chunk(tmp_path):
    rng = np.random.default_rng(0)
    params = model.init_params(5, 8, 1, rng=rng, dtype=np.float64)
    path = tmp_path / "ids"
    rng.integers(0, 5, 80_000).astype(np.uint8).tofile(path)
    ids = np.memmap(path, dtype=np.uint8, mode="r")
    tracemalloc.start()
    result = evaluate_ids(params, ids, cell="rnn")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.chars == 79_999 and peak < 250_000  # a whole-text index array alone would be 640 kB


def peak_rss_kb(argv, cwd):
    script = ("import resource, sys\nfrom charnn.cli.app import main\ncode = main(sys.argv[1:])\n"
              "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.strip().splitlines()[-1]), proc.stdout


def test_eval_of_a_big_file_stays_within_a_fraction_of_its_size(hello, tmp_path):
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    rng = np.random.default_rng(0)
    big.write_bytes(np.frombuffer(b"ehlo", np.uint8)[rng.integers(0, 4, 8_000_000)].tobytes())
    small.write_text("hellohello")
    base, _ = peak_rss_kb(["eval", str(small), "-c", str(hello), "--json"], tmp_path)
    peak, out = peak_rss_kb(["eval", str(big), "-c", str(hello), "--json", "--streams", "64"], tmp_path)
    assert json.loads(out)["chars"] == 8_000_000 - 1
    assert (peak - base) * 1024 < 1.5 * 8_000_000, (base, peak)


# ---- 8. downloads --------------------------------------------------------------------------------------------


def test_a_host_that_accepts_but_never_answers_is_a_quick_one_line_error(tmp_path, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    monkeypatch.setattr(corpus, "DOWNLOAD_TIMEOUT_S", 0.5)
    start = time.monotonic()
    with pytest.raises(CharnnError, match="no answer within 0.5 s.*set data.path"):
        corpus.fetch(f"http://127.0.0.1:{server.getsockname()[1]}/t.txt", "0" * 64, tmp_path)
    server.close()
    assert time.monotonic() - start < 5 and list(tmp_path.iterdir()) == []


def test_a_long_download_reports_progress(tmp_path, monkeypatch):
    body = b"abc\n" * 300_000

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(corpus, "PROGRESS_EVERY_S", 0.0)
    import hashlib

    messages = []
    got = corpus.fetch(f"http://127.0.0.1:{server.server_address[1]}/t.txt", hashlib.sha256(body).hexdigest(),
                       tmp_path, log=messages.append)
    server.shutdown()
    assert got.read_bytes() == body and messages and "of 1.2 MB" in messages[-1]


# ---- 9. sampling into a pipe -------------------------------------------------------------------------------------


def read_at_least(proc, count, timeout):
    data, deadline = b"", time.time() + timeout
    while len(data) < count and time.time() < deadline:
        if select.select([proc.stdout], [], [], 0.1)[0]:
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
    return data


def test_sampling_into_a_pipe_streams_and_stops_with_the_reader(hello, tmp_path):
    cmd = CHARNN + ["sample", "-c", str(hello), "-n", "100000000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    head = read_at_least(proc, 20, timeout=30)  # all-or-nothing would take many minutes
    proc.stdout.close()  # `head -c 20` exits
    try:
        code = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert len(head) >= 20 and code == 0 and b"Traceback" not in proc.stderr.read()


def test_ctrl_c_while_sampling_keeps_what_was_written(hello, tmp_path):
    cmd = CHARNN + ["sample", "-c", str(hello), "-n", "100000000", "--seed", "h"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    head = read_at_least(proc, 20, timeout=30)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=30)
    text = (head + rest).decode()
    assert proc.returncode == 130 and text.startswith("h") and len(text) >= 20 and set(text) <= set("helo\n")
    assert one_line_error(err.decode()) and "interrupted" in err.decode()


# ---- 10. the test split ----------------------------------------------------------------------------------------


def test_the_test_split_is_scored_and_never_trained_on(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    head = "".join(rng.choice(list("abcd "), 4500))
    for name, tail in (("a", "abcd " * 100), ("b", "dcba " * 100)):  # same characters, other test text
        (tmp_path / f"{name}.txt").write_text(head + tail)
        (tmp_path / f"{name}.yaml").write_text(
            f"data:\n  path: {name}.txt\n  val_fraction: 0.1\n  test_fraction: 0.1\nmodel:\n  hidden_size: 8\n"
            "train:\n  batch_size: 4\n  seq_len: 8\n  steps: 30\nrun:\n  eval_every: 10\n")
        assert run(capsys, "train", tmp_path / f"{name}.yaml", "-q")[0] == 0
    metrics = [(tmp_path / "runs" / n / "metrics.jsonl").read_text() for n in "ab"]
    drop_times = lambda text: [{k: v for k, v in json.loads(line).items() if k not in ("elapsed_s", "chars_per_s")}
                               for line in text.splitlines()]
    assert drop_times(metrics[0]) == drop_times(metrics[1])  # the test tail never reached training or validation
    scores = {}
    for split in ("train", "val", "test"):
        code, out, err = run(capsys, "eval", "--split", split, "-c", tmp_path / "runs" / "a" / "best.npz", "--json")
        assert code == 0, err
        scores[split] = json.loads(out)
    assert scores["test"]["chars"] == 500 - 1 and scores["val"]["chars"] == 500 - 1
    code, _, err = run(capsys, "eval", "--split", "test", "-c", tmp_path / "runs" / "a" / "best.npz")
    assert code == 0
    (tmp_path / "a.txt").write_text(head + "dcba " * 100)
    code, _, err = run(capsys, "eval", "--split", "test", "-c", tmp_path / "runs" / "a" / "best.npz")
    assert code == 1 and "has changed since the checkpoint was trained" in err and one_line_error(err)


def test_a_run_without_a_test_split_says_so(hello, capsys):
    code, _, err = run(capsys, "eval", "--split", "test", "-c", hello)
    assert code == 1 and "has no test split" in err and "data.test_fraction" in err and one_line_error(err)
    code, _, err = run(capsys, "eval", "-c", hello)
    assert code == 1 and "--split" in err and one_line_error(err)


# ---- 11. --json everywhere ------------------------------------------------------------------------------------------


def test_train_json_keys(write_config, capsys):
    code, out, _ = run(capsys, "train", write_config(), "--json", "-q")
    result = json.loads(out)
    assert code == 0 and set(result) == {"run_dir", "steps", "chars", "best_val_loss", "last_val_loss",
                                         "best_val_bpc", "elapsed_s", "chars_per_s", "stopped", "checkpoint"}
    assert result["stopped"] == "steps" and result["chars"] == 20 * 2 * 8
    assert result["best_val_bpc"] == pytest.approx(result["best_val_loss"] / np.log(2))


def test_sample_json_and_several_samples(hello, capsys):
    code, out, _ = run(capsys, "sample", "-c", hello, "--seed", "he", "-n", "8", "--num-samples", "3",
                       "--rng-seed", "1", "--json")
    result = json.loads(out)
    assert code == 0 and len(result["samples"]) == 3 and result["text"] == result["samples"][0]
    assert all(len(s) == 8 for s in result["samples"]) and result["seed"] == "he" and result["length"] == 8
    assert {"temperature", "top_k", "greedy", "chars_per_s"} <= set(result)


def test_synth_json_and_table(tmp_path, capsys):
    code, out, _ = run(capsys, "data", "synth", "delay", "-o", tmp_path / "d.txt", "-n", "2000", "--json")
    assert code == 0 and json.loads(out)["task"] == "delay"
    code, out, _ = run(capsys, "data", "synth", "delay", "-o", tmp_path / "e.txt", "-n", "2000")
    assert code == 0 and "recoverable by memory" in out


# ---- 12-14. the command line ----------------------------------------------------------------------------------------


def test_one_set_takes_several_pairs(write_config, capsys):
    code, out, err = run(capsys, "train", write_config(), "--set", "train.steps=3", "model.hidden_size=1e1",
                         "--json", "-q")
    assert code == 0 and json.loads(out)["steps"] == 3, err
    from charnn.cli.app import expand_set_arguments

    assert expand_set_arguments(["train", "c.yaml", "--set", "a.b=1", "c.d=2", "c2.yaml"]) == \
        ["train", "c.yaml", "--set", "a.b=1", "--set", "c.d=2", "c2.yaml"]
    code, _, err = run(capsys, "train", write_config(), "--set", "train.steps=3", "steps=4")
    assert code == 2 and "section.key=value" in err and one_line_error(err)


def test_set_errors_name_the_command_line(write_config, capsys):
    config = write_config()
    code, _, err = run(capsys, "train", config, "--set", "train.lr=fast")
    assert code == 1 and "--set train.lr=fast: expected a number" in err and str(config) not in err


def test_top_k_zero_greedy_at_temperature_zero(hello, capsys):
    code, out, _ = run(capsys, "sample", "-c", hello, "--top-k", "0", "-n", "5", "--rng-seed", "0")
    assert code == 0 and len(out) == 6
    code, out, _ = run(capsys, "sample", "-c", hello, "--greedy", "--temperature", "0", "--seed", "h", "-n", "4")
    assert code == 0 and out == "hello\n"


def test_help_shows_choices_and_no_type_noise(capsys):
    for argv in (["train", "--help"], ["sample", "--help"], ["data", "synth", "--help"], ["eval", "--help"]):
        code, out, _ = run(capsys, *argv)
        assert code == 0 and "<bool>" not in out and "<list" not in out and "<path>" not in out
    assert "delay|brackets" in run(capsys, "data", "synth", "--help")[1]
    assert "train|val|test" in run(capsys, "eval", "--help")[1]
    assert "--install-completion" in run(capsys, "--help")[1]


def test_help_paragraphs_are_not_broken_at_docstring_line_ends(capsys):
    os.environ["COLUMNS"] = "200"
    try:
        out = run(capsys, "train", "--help")[1]
    finally:
        del os.environ["COLUMNS"]
    assert "run directory. Ctrl-C saves latest.npz and prints the command" in out


def test_no_color_means_no_escape_codes_at_all(write_config, tmp_path):
    env = dict(os.environ, NO_COLOR="1", FORCE_COLOR="", TERM="xterm", COLUMNS="80")
    env.pop("FORCE_COLOR")
    script = ("import sys\nfrom rich.console import Console\nimport charnn.cli.display as d\n"
              "d.Console.is_terminal = property(lambda self: True)\nd.print_error('bad thing')")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert proc.stderr.startswith("error: bad thing") and "\x1b[" not in proc.stderr


def test_plain_logs_are_not_wrapped_at_80_columns(write_config, tmp_path):
    long_name = "a-run-with-a-rather-long-name-" * 4
    proc = subprocess.run(CHARNN + ["train", str(write_config()), "--set", f"run.name={long_name}"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0 and any(long_name in line and line.startswith("training ")
                                        for line in proc.stderr.splitlines())


def test_shell_completion_completes_commands(tmp_path):
    env = dict(os.environ, _CHARNN_COMPLETE="complete_bash", COMP_WORDS="charnn ins", COMP_CWORD="1")
    proc = subprocess.run(CHARNN, capture_output=True, text=True, env=env, timeout=60)
    assert "inspect-gradients" in proc.stdout


# ---- 15. inspect-gradients on the hello model ------------------------------------------------------------------------


def test_inspect_gradients_on_the_hello_model_with_defaults(hello, capsys):
    code, out, err = run(capsys, "inspect-gradients", "-c", hello, "--json")
    assert code == 0, err
    assert json.loads(out)["steps"] == 4 and "--steps 4" in err


def test_a_decay_of_072_per_step_is_not_healthy():
    from charnn.analysis import gradients

    decay = 0.72 ** np.arange(50)
    word, advice = gradients.verdict(gradients._horizon(decay), gradients._fit_factor(decay), decay)
    assert word == "short memory" and "0.72" in advice
    beyond = 0.72 ** np.arange(8)  # T too short to see the horizon: the fitted decay still counts
    assert gradients.verdict(None, gradients._fit_factor(beyond), beyond)[0] == "short memory"
    assert gradients.verdict(None, 0.99, 0.99 ** np.arange(8))[0] == "healthy"


# ---- 16. files ---------------------------------------------------------------------------------------------------------


def test_synth_refuses_to_overwrite_without_force(tmp_path, capsys):
    target = tmp_path / "d.txt"
    target.write_text("precious")
    code, _, err = run(capsys, "data", "synth", "delay", "-o", target, "-n", "100")
    assert code == 1 and "--force" in err and one_line_error(err) and target.read_text() == "precious"
    assert run(capsys, "data", "synth", "delay", "-o", target, "-n", "100", "--force")[0] == 0
    assert target.read_text() != "precious"


def test_plot_with_an_unsupported_extension_fails_before_any_work(hello, tmp_path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    import charnn.analysis.gradients

    monkeypatch.setattr(charnn.analysis.gradients, "analyse", lambda *a, **k: pytest.fail("the analysis ran"))
    code, _, err = run(capsys, "inspect-gradients", "-c", hello, "--plot", tmp_path / "g.txt")
    assert code == 1 and ".png" in err and one_line_error(err)


def test_sample_from_a_directory_says_so(hello, capsys):
    code, _, err = run(capsys, "sample", "-c", hello.parent)
    assert code == 1 and "is a directory" in err and "best.npz" in err and one_line_error(err)
