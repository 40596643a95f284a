"""charnn sweep: sweep files, parallel workers on one study, crashes, Ctrl-C, invalid trials."""

import json
import re
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="charnn sweep needs Optuna: pip install -e '.[sweep]'")

from charnn.search import study as sweeps
from charnn.search import spec as sweepfile  # noqa: E402
from charnn.settings import load_config  # noqa: E402
from charnn.errors import CharnnError  # noqa: E402
from charnn.training.loop import train  # noqa: E402

from test_cli import assert_one_line_error, run  # noqa: E402

SPACE = """
base: exp.yaml
space:
  train.lr: {low: 1e-3, high: 1e-1, log: true}
  model.hidden_size: {choices: [8, 12]}
trials: 3
trial: {steps: 10}
"""
# a trial that lasts about 1 s, so a test can act while it runs; evaluated only at its end, so
# that a worker killed mid-trial is not holding the journal file's lock (its next holder would
# wait out Optuna's 30 s grace period)
SLOW = """
base: exp.yaml
space:
  train.lr: {low: 1e-3, high: 1e-1, log: true}
trials: 2
trial: {steps: 1000000, max_minutes: 0.015, run.eval_every: 0}
pruner: none
"""


@pytest.fixture
def write_sweep(tmp_path, write_config):
    """Write the tiny base config (exp.yaml) and a sweep file beside it; return the sweep's path."""

    def write(body: str = SPACE, name: str = "sw.yaml") -> Path:
        write_config()
        path = tmp_path / name
        path.write_text(textwrap.dedent(body), encoding="utf-8")
        return path

    return write


def trials_of(spec):
    return sweeps.open_study(spec, create=False).get_trials(deepcopy=False)


def worker(path, cwd, *args):
    cmd = [sys.executable, "-m", "charnn", "sweep", str(path), *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)


def wait_for_running(spec, pid, timeout=60):
    """The number of the trial that process `pid` is running, once it has trained a few steps."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            trials = trials_of(spec)
        except CharnnError:  # the worker has not created the study yet
            trials = []
        for t in trials:
            metrics = Path(t.user_attrs.get("run_dir", "-")) / "metrics.jsonl"
            if t.state.name == "RUNNING" and t.user_attrs.get("pid") == pid and metrics.exists() \
                    and metrics.read_text().count("train_loss") >= 3:
                return t.number
        time.sleep(0.05)
    raise AssertionError(f"process {pid} started no trial within {timeout} s")


def assert_run_dirs_intact(spec, trials):
    """Each trial that trained has its own run directory, written by one process only."""
    dirs = [t.user_attrs["run_dir"] for t in trials if "config" in t.user_attrs]
    assert len(dirs) == len(set(dirs))
    for t in trials:
        if "config" not in t.user_attrs:
            continue
        run_dir = Path(t.user_attrs["run_dir"])
        assert run_dir == spec.folder / f"trial-{t.number}"
        assert load_config(run_dir / "config.yaml").run.name == f"trial-{t.number}"
        steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()
                 if "train_loss" in line]
        assert steps == sorted(set(steps)), f"{run_dir}: metrics written twice"
        if t.state.name in ("COMPLETE", "PRUNED"):
            assert (run_dir / "best.npz").exists()


# ---- the sweep file ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, message",
    [
        (SPACE + "budget: 3\n", "budget: unknown key"),
        (SPACE.replace("model.hidden_size:", "model.hiden_size:"), "space.model.hiden_size: not a config key (did you mean 'model.hidden_size'?)"),
        (SPACE.replace("low: 1e-3, high: 1e-1", "low: 1e-1, high: 1e-3"), "space.train.lr: low (0.1) is greater than high (0.001)"),
        (SPACE.replace("[8, 12]", "[]"), "space.model.hidden_size.choices: must be a non-empty list"),
        (SPACE.replace("base: exp.yaml", "base: nowhere.yaml"), "base: "),
        (SPACE.replace("log: true", "lg: true"), "space.train.lr.lg: unknown key"),
        (SPACE.replace("{choices: [8, 12]}", "{low: 8.5, high: 12}"), "space.model.hidden_size.low: expected an integer"),
        (SPACE.replace("trial: {steps: 10}", "trial: {stepz: 10}"), "trial.stepz: not a train.* key (did you mean 'steps'?)"),
        (SPACE.replace("trial: {steps: 10}", "trial: {run.eval_evry: 10}"), "trial.run.eval_evry: not a config key"),
        (SPACE.replace("trial: {steps: 10}", "trial: {model.hidden_size: 10}"), "trial.model.hidden_size: also in space"),
        (SPACE.replace("trial: {steps: 10}", "trial: {steps: -1}"), "train.steps: must be >= 1"),
        (SPACE + "sampler: grid\n", "space.train.lr: the grid sampler needs choices"),
        (SPACE + "pruner: medain\n", "pruner: 'medain' is not one of median, hyperband, none (did you mean 'median'?)"),
        (SPACE + "objective: accuracy\n", "objective: 'accuracy' is not one of val_loss"),
        (SPACE.replace("train.lr:", "run.name:"), "space.run.name: set by the sweep"),
        ("base: exp.yaml\n", "space: give at least one config key"),
    ],
)
def test_bad_sweep_files_fail_in_one_line_before_any_trial(write_sweep, tmp_path, capsys, body, message):
    path = write_sweep(body)
    code, out, err = run(capsys, "sweep", path)
    assert code == 1 and out == "" and message in err
    assert_one_line_error(err)
    assert not list((tmp_path / "runs").glob("*/trial-*"))


@pytest.mark.parametrize("storage", ["sqlite:///{tmp}/no/such/folder/s.db", "nosuchdb://host/x"])
def test_unreachable_storage_is_one_line_before_any_trial(write_sweep, tmp_path, capsys, storage):
    code, _, err = run(capsys, "sweep", write_sweep(), "--storage", storage.format(tmp=tmp_path))
    assert code == 1 and "--storage" in err and "cannot open it" in err
    assert_one_line_error(err)
    assert not list((tmp_path / "runs").glob("*/trial-*"))


def test_status_of_a_sweep_not_started(write_sweep, capsys):
    code, _, err = run(capsys, "sweep", write_sweep(), "--status")
    assert code == 1 and "no sweep 'sw' yet" in err
    assert_one_line_error(err)


def test_without_optuna_one_line_names_the_extra(write_sweep, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)
    code, _, err = run(capsys, "sweep", write_sweep())
    assert code == 1 and "pip install -e '.[sweep]'" in err
    assert_one_line_error(err)


def test_sweep_files_shipped_with_the_project_load():
    files = sorted((Path(__file__).parent.parent / "configs" / "sweeps").glob("*.yaml"))
    assert files
    for path in files:
        spec = sweepfile.load_sweep(path)
        assert spec.folder == Path("runs") / spec.name and spec.trial["train.max_minutes"] > 0


def test_help_and_a_missing_sweep_file(tmp_path, capsys):
    code, out, _ = run(capsys, "sweep", "--help")
    assert code == 0 and "Example: charnn sweep" in out and "--worker " not in out
    code, _, err = run(capsys, "sweep", tmp_path / "nope.yaml")
    assert code == 1 and "sweep file" in err and "not found" in err
    assert_one_line_error(err)


def test_space_keys_are_the_config_dataclasses_keys():
    keys = sweepfile.config_keys()
    assert keys["train.lr"] == "float" and keys["model.hidden_size"] == "int" and keys["model.cell"] == "str"
    assert "source" not in {k.split(".")[0] for k in keys}


def test_trial_config_applies_the_sampled_values_and_the_fixed_keys(write_sweep):
    spec = sweepfile.load_sweep(write_sweep(SPACE.replace("trial: {steps: 10}", "trial: {steps: 10, run.eval_every: 2}")))
    cfg = sweeps.trial_config(spec, {"train.lr": 0.02, "model.hidden_size": 8}, 3)
    assert (cfg.train.lr, cfg.model.hidden_size, cfg.train.steps, cfg.run.eval_every) == (0.02, 8, 10, 2)
    assert cfg.run.name == "trial-3" and Path(cfg.run.dir) == spec.folder


# ---- one process ------------------------------------------------------------------------------


def test_sweep_json_run_dirs_best_yaml_and_continuing(write_sweep, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = write_sweep()
    code, out, err = run(capsys, "sweep", path, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert set(summary) == {"study", "storage", "best", "trials"} and summary["study"] == "sw"
    assert summary["storage"] == str(tmp_path / "runs" / "sw" / "optuna-journal.log")
    assert [t["number"] for t in summary["trials"]] == [0, 1, 2]
    for t in summary["trials"]:
        assert {"number", "state", "value", "params", "run_dir"} <= set(t) and t["state"] == "COMPLETE"
        assert set(t["params"]) == {"train.lr", "model.hidden_size"}
    best = summary["best"]
    assert best["value"] == min(t["value"] for t in summary["trials"]) and set(best) == {"number", "value", "params", "run_dir"}
    # a trial is an ordinary run: sample from it
    code, sample, _ = run(capsys, "sample", "--checkpoint", Path(best["run_dir"]) / "best.npz", "-n", "5")
    assert code == 0 and len(sample) == 6
    # best.yaml is the best trial's config, under a new run name, and charnn train accepts it
    best_yaml = tmp_path / "runs" / "sw" / "best.yaml"
    cfg = load_config(best_yaml)
    assert cfg.run.name == "sw-best" and cfg.run.dir == str(tmp_path / "runs")
    assert cfg.train.lr == best["params"]["train.lr"] and cfg.train.steps == 10
    assert run(capsys, "train", best_yaml, "-q")[0] == 0 and (tmp_path / "runs" / "sw-best" / "best.npz").exists()
    # --trials is the total to reach: the same target runs nothing, a higher one continues
    code, out, _ = run(capsys, "sweep", path, "--trials", "3", "--json")
    assert code == 0 and len(json.loads(out)["trials"]) == 3
    code, out, _ = run(capsys, "sweep", path, "--trials", "4", "--json")
    assert code == 0 and [t["number"] for t in json.loads(out)["trials"]] == [0, 1, 2, 3]
    code, out, _ = run(capsys, "sweep", path, "--status")
    assert code == 0 and "sweep sw: 4 trials (4 complete)" in out and "train.lr=" in out


def test_an_invalid_trial_config_fails_that_trial_and_the_sweep_goes_on(write_sweep, capsys):
    path = write_sweep("""
        base: exp.yaml
        space:
          model.dropout: {choices: [0.1, 1.5]}
        sampler: grid
        trials: 2
        trial: {steps: 10}
    """)
    code, out, err = run(capsys, "sweep", path, "--json")
    assert code == 0, err
    trials = {t["params"]["model.dropout"]: t for t in json.loads(out)["trials"]}
    assert trials[0.1]["state"] == "COMPLETE" and trials[1.5]["state"] == "FAIL"
    assert "model.dropout=1.5: must be in [0, 1)" in trials[1.5]["error"]
    assert "Traceback" not in err


def test_every_config_invalid_gives_up_with_one_line(write_sweep, capsys):
    path = write_sweep(SPACE.replace("{choices: [8, 12]}", "{choices: [0, -1]}"))
    code, _, err = run(capsys, "sweep", path)
    assert code == 1 and "5 trials in a row failed" in err and re.search(r"model.hidden_size=-?[01]: must be >= 1", err)


def test_a_pruned_trial_stops_after_its_evaluation_with_best_npz(write_config, tmp_path):
    class Trial:
        reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) == 2

    cfg = load_config(write_config(), ["train.steps=100"])
    with pytest.raises(optuna.TrialPruned, match="pruned at evaluation 2 .step 10"):
        train(cfg, tmp_path / "t", callback=sweeps._TrialCallback(Trial(), threading.Event()))
    assert [s for s, _ in Trial.reports] == [1, 2] and (tmp_path / "t" / "best.npz").exists()
    steps = [json.loads(line)["step"] for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    assert max(steps) == 11  # one step after the pruning decision, not the 100 asked for


def test_a_trial_failed_by_another_worker_while_it_runs_is_not_recorded_twice(write_sweep, monkeypatch, capsys):
    path = write_sweep(SPACE.replace("trials: 3", "trials: 1"))
    spec, real_train = sweepfile.load_sweep(path), sweeps.train

    def train_after_losing_the_trial(cfg, run_dir, callback):
        if run_dir.name == "trial-0":  # as another worker does when this one's heartbeat stops
            sweeps.open_study(spec).tell(0, state=optuna.trial.TrialState.FAIL)
        return real_train(cfg, run_dir, callback=callback)

    monkeypatch.setattr(sweeps, "train", train_after_losing_the_trial)
    code, out, err = run(capsys, "sweep", path, "--json")
    assert code == 0 and "trial 0 was ended by another worker" in err and "Traceback" not in err
    assert [t["state"] for t in json.loads(out)["trials"]] == ["FAIL", "COMPLETE"]


def test_one_folder_one_storage(write_sweep, tmp_path, capsys):
    path = write_sweep(SPACE.replace("trials: 3", "trials: 1"))
    assert run(capsys, "sweep", path)[0] == 0
    code, _, err = run(capsys, "sweep", path, "--storage", f"sqlite:///{tmp_path / 's.db'}")
    assert code == 1 and "optuna-journal.log" in err and "another name" in err
    assert_one_line_error(err)


def test_blas_threads_split_the_cores_unless_set():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = sweeps.blas_env(cores * 2, environ={"MKL_NUM_THREADS": "3"})
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "3"
    assert sweeps.blas_env(1, environ={})["OMP_NUM_THREADS"] == str(cores)


def test_storage_passwords_are_masked():
    assert sweeps.shown_storage("postgresql://me:secret@db:5432/x") == "postgresql://me:***@db:5432/x"


# ---- several processes ------------------------------------------------------------------------


@pytest.mark.parametrize("storage, workers", [("journal", 2), ("journal", 4), ("sqlite", 2), ("sqlite", 4)])
def test_parallel_workers_never_share_a_trial(write_sweep, tmp_path, monkeypatch, capsys, storage, workers):
    monkeypatch.chdir(tmp_path)
    path = write_sweep(SPACE.replace("trials: 3", "trials: 4"))
    args = ["--storage", f"sqlite:///{tmp_path / 's.db'}"] if storage == "sqlite" else []
    code, out, err = run(capsys, "sweep", path, "--workers", workers, "--json", *args)
    assert code == 0, err
    spec = sweepfile.load_sweep(path, *args[1:])
    trials = trials_of(spec)
    states = [t.state.name for t in trials]
    assert states.count("COMPLETE") + states.count("PRUNED") >= 4 and set(states) <= {"COMPLETE", "PRUNED"}
    pids = {t.user_attrs["pid"] for t in trials}
    assert os.getpid() not in pids and len(pids) >= 2  # separate worker processes shared the study
    assert_run_dirs_intact(spec, trials)
    assert len(json.loads(out)["trials"]) == len(trials)


def test_a_worker_killed_mid_trial_fails_its_trial_and_the_others_finish(write_sweep, tmp_path):
    path = write_sweep(SLOW.replace("trials: 2", "trials: 3"))
    spec = sweepfile.load_sweep(path)
    sweeps.open_study(spec)
    sweeps.prepare_corpus(spec)  # once, before the workers start
    a, b = worker(path, tmp_path), worker(path, tmp_path)
    killed = wait_for_running(spec, a.pid)
    a.kill()
    a.wait()
    restarted = worker(path, tmp_path)
    for p in (b, restarted):
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    trials = trials_of(spec)
    states = {t.number: t.state.name for t in trials}
    assert states[killed] == "FAIL" and "RUNNING" not in states.values()
    assert "died during the trial" in trials[killed].user_attrs["error"]
    finished = [n for n, s in states.items() if s in ("COMPLETE", "PRUNED")]
    assert len(finished) == 3
    assert_run_dirs_intact(spec, trials)


def test_ctrl_c_records_the_trial_and_the_next_start_continues(write_sweep, tmp_path):
    path = write_sweep(SLOW)
    spec = sweepfile.load_sweep(path)
    p = worker(path, tmp_path)
    interrupted = wait_for_running(spec, p.pid)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130 and "Traceback" not in err
    assert_one_line_error("\n".join(line for line in err.splitlines() if line.startswith("error:")))
    t = trials_of(spec)[interrupted]
    assert t.state.name == "FAIL" and t.user_attrs["error"] == "interrupted (Ctrl-C)"
    assert (spec.folder / f"trial-{interrupted}" / "latest.npz").exists()
    again = worker(path, tmp_path, "--json")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    states = [t["state"] for t in json.loads(out)["trials"]]
    assert states.count("COMPLETE") == 2 and states.count("FAIL") == 1


@pytest.mark.filterwarnings("ignore:Heartbeat")
def test_on_an_rdb_storage_a_silent_trial_of_another_host_is_failed_by_the_heartbeat(write_sweep, tmp_path, monkeypatch):
    monkeypatch.setattr(sweeps, "HEARTBEAT_S", 1)
    monkeypatch.setattr(sweeps, "GRACE_S", 1)
    spec = sweepfile.load_sweep(write_sweep(SPACE.replace("trials: 3", "trials: 1")), f"sqlite:///{tmp_path / 's.db'}")
    study = sweeps.open_study(spec)
    lost = study.ask()  # a worker on another machine that stopped beating mid-trial
    lost.set_user_attr("hostname", "elsewhere")
    lost.set_user_attr("pid", 1)
    study._storage.record_heartbeat(lost._trial_id)
    with sqlite3.connect(tmp_path / "s.db") as db:  # its last beat, a minute ago: no waiting on the clock
        db.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-60 seconds')")
    summary = sweeps.run_sweep(spec)
    assert [t["state"] for t in summary["trials"]] == ["FAIL", "COMPLETE"]


def test_postgresql_two_worker_processes(write_sweep, tmp_path):
    from pgserver import postgres_server, unavailable

    reason = unavailable()
    if reason:
        pytest.skip(reason)
    path = write_sweep(SPACE.replace("trials: 3", "trials: 4"))
    with postgres_server() as url:
        sweeps.prepare_corpus(sweepfile.load_sweep(path, url))
        procs = [worker(path, tmp_path, "--storage", url) for _ in range(2)]
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        sweep = sweepfile.load_sweep(path, url)
        trials = trials_of(sweep)
        assert sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials) >= 4
        assert len({t.user_attrs["pid"] for t in trials}) == 2
        assert_run_dirs_intact(sweep, trials)
