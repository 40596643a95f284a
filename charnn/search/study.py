"""Hyperparameter search on Optuna: a sweep file, a shared study, and workers that run trials.

A sweep file names a base config, a search space over dotted config keys and a budget. Each
trial is an ordinary run directory, <run.dir>/<sweep>/trial-<n>/, trained by
charnn.training.loop.train with the sampled values applied as `--set` overrides of the base config.
The study lives in an Optuna storage (by default a journal file beside the trials) that any
number of workers, here or on other machines, share: each asks the study for its next trial,
so no trial runs twice, and a restarted worker continues the study.

A worker killed mid-trial leaves its trial RUNNING in the storage. RDB storages (SQLite,
PostgreSQL, MySQL) fail such trials through Optuna's heartbeat; the journal file has none,
so every worker also fails the RUNNING trials of dead processes on its own host (each trial
records its hostname and pid).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

from charnn import hints
from charnn.config import Config, dump_yaml, to_dict
from charnn.settings import from_dict, load_config
from charnn.search.spec import Sweep
from charnn.errors import CharnnError
from charnn.files import write_text_atomically
from charnn.data.corpus import load_corpus
from charnn.procs import alive, deferred_interrupt
from charnn.training.loop import Callback, TrainingInterrupted, train

HEARTBEAT_S, GRACE_S = 30, 120  # RDB storages: a trial silent for GRACE_S seconds is failed
BLAS_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


class SweepInterrupted(TrainingInterrupted):
    """Ctrl-C: the running trial is recorded as failed; the same command continues the study."""


class _TrialFailed(Exception):
    """A trial that cannot run (its config is invalid, training diverged): Optuna records FAIL."""


def _optuna():
    try:
        import optuna
    except ImportError:
        raise CharnnError(f"charnn sweep needs Optuna: {hints.install('sweep')}") from None
    # the sweep reports trials itself; Optuna's own lines (with tracebacks) would drown them
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna


# ---- the study --------------------------------------------------------------------------------


def shown_storage(storage: str) -> str:
    """The storage as it may be printed: an RDB URL's password masked."""
    if "://" not in storage:
        return storage
    try:
        from sqlalchemy.engine import make_url

        return make_url(storage).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy can parse: opening it reports the problem
        return storage


def _engine_kwargs(url: str) -> dict:
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}  # workers take turns writing one file
    if url.startswith(("postgresql", "mysql")):
        return {"connect_args": {"connect_timeout": 10}}  # an unreachable host fails fast
    return {}


def _rdb_storage(url: str):
    import sqlalchemy.exc

    for attempt in range(5):
        try:
            return _optuna().storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url),
                                                 heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # workers starting together on an empty database race to create Optuna's tables, and
            # PostgreSQL's CREATE TABLE IF NOT EXISTS is not atomic: the loser retries, finds them made
            if attempt == 4:
                raise
            time.sleep(0.2 * (attempt + 1))


def _storage(sweep: Sweep, create: bool):
    optuna = _optuna()
    url, shown = sweep.storage, shown_storage(sweep.storage)
    try:
        if "://" not in url:
            if not create and not Path(url).is_file():
                raise CharnnError(f"no sweep {sweep.name!r} yet: {url} does not exist; start it with: charnn sweep {sweep.path}")
            from optuna.storages.journal import JournalFileBackend

            Path(url).parent.mkdir(parents=True, exist_ok=True)
            return optuna.storages.JournalStorage(JournalFileBackend(url))
        return _rdb_storage(url)
    except CharnnError:
        raise
    except ImportError as e:
        missing = e.name or getattr(e.__cause__, "name", None) or "module"
        raise CharnnError(f"--storage {shown}: its database driver ({missing}) is not installed; "
                          f"for PostgreSQL: {hints.install('postgres')}") from None
    except Exception as e:  # SQLAlchemy's errors for a bad URL, a refused connection, a missing folder
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CharnnError(f"--storage {shown}: cannot open it: {first}; check the URL and that the server is running") from None


def _sampler(sweep: Sweep):
    samplers = _optuna().samplers
    if sweep.sampler == "grid":
        return samplers.GridSampler({key: list(p.choices) for key, p in sweep.space.items()})
    if sweep.sampler == "random":
        return samplers.RandomSampler()
    # constant liar: running trials count as bad ones, so parallel workers do not all try one spot
    return samplers.TPESampler(constant_liar=True)


def _pruner(sweep: Sweep):
    pruners = _optuna().pruners
    return {"median": pruners.MedianPruner, "hyperband": pruners.HyperbandPruner, "none": pruners.NopPruner}[sweep.pruner]()


def open_study(sweep: Sweep, create: bool = True):
    """The sweep's study, created on first use; with create=False it must exist."""
    optuna = _optuna()
    storage = _storage(sweep, create)
    if not create:
        try:
            return optuna.load_study(study_name=sweep.name, storage=storage, sampler=_sampler(sweep), pruner=_pruner(sweep))
        except KeyError:
            raise CharnnError(f"no sweep {sweep.name!r} in {shown_storage(sweep.storage)} yet; "
                              f"start it with: charnn sweep {sweep.path}") from None
    study = optuna.create_study(study_name=sweep.name, storage=storage, sampler=_sampler(sweep),
                                pruner=_pruner(sweep), direction="minimize", load_if_exists=True)
    _claim_folder(study, sweep)
    return study


def _claim_folder(study, sweep: Sweep) -> None:
    """One folder, one study: refuse to mix trial folders of studies in different storages."""
    marker = sweep.folder / "storage"
    shown = shown_storage(sweep.storage)
    recorded = marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
    if recorded is not None and recorded != shown:
        raise CharnnError(f"{sweep.folder} holds the trials of sweep {sweep.name} stored in {recorded}; "
                          f"run with --storage {recorded}, or give this sweep another name: key")
    # trials are created in the storage before their folders, so a folder beyond them is foreign
    known = len(study.get_trials(deepcopy=False))
    stray = [p.name for p in sweep.folder.glob("trial-*") if p.name[6:].isdigit() and int(p.name[6:]) >= known]
    if stray:
        raise CharnnError(f"{sweep.folder / min(stray)} belongs to no trial of this study (was its storage deleted?); "
                          "move the trial folders away, or give this sweep another name: key")
    if recorded is None:
        sweep.folder.mkdir(parents=True, exist_ok=True)
        marker.write_text(shown + "\n", encoding="utf-8")


def fail_dead_trials(study, log=lambda message: None) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone: silent past the grace period (RDB
    heartbeat, any host), or on this host with its process dead (any storage)."""
    optuna = _optuna()
    optuna.storages.fail_stale_trials(study)  # a no-op without a heartbeat (the journal file)
    failed = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("hostname") != socket.gethostname() or pid is None or alive(pid):
            continue  # other hosts: the heartbeat (RDB) or their own next worker fails them
        try:
            study._storage.set_trial_user_attr(t._trial_id, "error", f"worker {socket.gethostname()}:{pid} died during the trial")
            study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
        failed.append(t.number)
        log(f"trial {t.number}: its worker (pid {pid}) died; recorded as FAIL")
    return failed


# ---- one trial --------------------------------------------------------------------------------


def trial_config(sweep: Sweep, params: dict, number: int) -> Config:
    """The base config with the sampled values and the trial budget applied as overrides."""
    overrides = [f"{key}={json.dumps(value)}" for key, value in params.items()]
    overrides += [f"{key}={json.dumps(value)}" for key, value in sweep.trial.items()]
    overrides += [f"run.dir={json.dumps(str(sweep.folder))}", f"run.name=trial-{number}"]
    return load_config(sweep.base, overrides, origin=f"{sweep.path}: trial {number}: {{item}}")


class _TrialCallback(Callback):
    """Reports each validation loss to the trial; a prune or a stop request ends training."""

    def __init__(self, trial, stop: threading.Event):
        self.trial, self.stop = trial, stop
        self.evals = 0
        self.pruned: str | None = None

    def on_step(self, metrics: dict) -> None:
        if self.stop.is_set():
            raise TrainingInterrupted(f"interrupted at step {metrics['step']}")
        if self.pruned:  # raised at the next logged step (run.log_every) after the decision, so best.npz
            # holds that evaluation; a trial whose budget ends first is recorded COMPLETE
            raise _optuna().TrialPruned(self.pruned)

    def on_eval(self, metrics: dict) -> None:
        # the k-th evaluation is reported as step k: with time-based evaluation
        # (run.eval_every_minutes) trials are then compared at equal training time
        self.evals += 1
        self.trial.report(metrics["val_loss"], self.evals)
        if self.pruned is None and self.trial.should_prune():
            self.pruned = f"pruned at evaluation {self.evals} (step {metrics['step']}, val_loss {metrics['val_loss']:.4f})"


class _Objective:
    def __init__(self, sweep: Sweep, stop: threading.Event, log):
        self.sweep, self.stop, self.log = sweep, stop, log
        self.number: int | None = None
        self.ended = False  # the trial ran to an end (a value, a prune, a recorded failure) ...
        self.lost = False  # ... or another worker failed it meanwhile (a heartbeat missed for GRACE_S)

    def __call__(self, trial) -> float:
        optuna = _optuna()
        try:
            value = self._run(trial)
        except (_TrialFailed, optuna.TrialPruned):
            self.ended = True
            raise
        except optuna.exceptions.UpdateFinishedTrialError:
            self.lost = True
            raise
        self.ended = True
        return value

    def _run(self, trial) -> float:
        self.number = n = trial.number
        run_dir = self.sweep.folder / f"trial-{n}"
        for key, value in (("hostname", socket.gethostname()), ("pid", os.getpid()), ("run_dir", str(run_dir))):
            trial.set_user_attr(key, value)
        params = {key: p.suggest(trial) for key, p in self.sweep.space.items()}
        self.log(f"trial {n} started: {format_params(params)} ({run_dir})")
        try:
            cfg = trial_config(self.sweep, params, n)
            trial.set_user_attr("config", to_dict(cfg))
            if self.stop.is_set():
                raise TrainingInterrupted("interrupted before training")
            result = train(cfg, run_dir, callback=_TrialCallback(trial, self.stop))
        except (TrainingInterrupted, KeyboardInterrupt):
            trial.set_user_attr("error", "interrupted (Ctrl-C)")
            raise
        except CharnnError as e:  # an invalid config, a diverged run: this trial fails, the sweep goes on
            trial.set_user_attr("error", str(e))
            raise _TrialFailed(str(e)) from None
        if result.best_val_loss is None:
            message = f"{cfg.source}: no validation text to score; set data.val_fraction > 0"
            trial.set_user_attr("error", message)
            raise _TrialFailed(message)
        return result.best_val_loss


def format_params(params: dict) -> str:
    return " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


# ---- workers ----------------------------------------------------------------------------------


def _more_to_run(study, sweep: Sweep) -> bool:
    """False once finished (complete or pruned) and running trials reach the target, or a grid is covered."""
    trials = study.get_trials(deepcopy=False)
    states = Counter(t.state.name for t in trials)
    if states["COMPLETE"] + states["PRUNED"] + states["RUNNING"] >= sweep.trials:
        return False
    if sweep.sampler == "grid":
        size = 1
        for p in sweep.space.values():
            size *= len(p.choices)
        return len(trials) - states["WAITING"] < size
    return True


def _outcome(t) -> str:
    seconds = f" in {t.duration.total_seconds():.0f} s" if t.duration else ""
    value = f" {t.value:.4f}" if t.value is not None else ""
    error = f": {t.user_attrs['error']}" if t.state.name == "FAIL" and "error" in t.user_attrs else ""
    return f"trial {t.number} {t.state.name}{value}{seconds}{error}"


def run_worker(sweep: Sweep, log=lambda message: None, study=None) -> None:
    """Ask the study for trials and run them until it holds sweep.trials finished ones."""
    study = study or open_study(sweep)
    give_up = max(5, sweep.trials)  # failures in a row: a space where every config is invalid
    failures = 0
    with deferred_interrupt() as stop:  # Ctrl-C between trials sets a flag, never mid-write
        while True:
            fail_dead_trials(study, log)
            if stop.is_set():
                raise SweepInterrupted(f"interrupted between trials; run the same command again to continue sweep {sweep.name}")
            if not _more_to_run(study, sweep):
                return
            objective = _Objective(sweep, stop, log)
            try:
                study.optimize(objective, n_trials=1, catch=(_TrialFailed,))
            except (TrainingInterrupted, KeyboardInterrupt):
                raise SweepInterrupted(f"interrupted: trial {objective.number} recorded as FAIL; run the same "
                                       f"command again to continue sweep {sweep.name}") from None
            except Exception:  # Optuna could not record the end of a trial that is no longer running
                if not (objective.ended or objective.lost):
                    raise
                log(f"trial {objective.number} was ended by another worker while it ran (no heartbeat for "
                    f"{GRACE_S} s: was this machine paused?); its result is not recorded")
                continue
            t = study.get_trials(deepcopy=False)[objective.number]
            log(_outcome(t))
            write_best(study, sweep)
            failures = failures + 1 if t.state.name == "FAIL" else 0
            if failures >= give_up:
                raise CharnnError(f"{failures} trials in a row failed (the last: {t.user_attrs.get('error')}); "
                                  f"fix the space in {sweep.path} or its base config")


def blas_env(workers: int, environ=None) -> dict:
    """The environment of one of `workers` processes: cores / workers BLAS threads each, unless set already."""
    env = dict(os.environ if environ is None else environ)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    for var in BLAS_VARS:
        env.setdefault(var, str(max(1, cores // workers)))
    return env


def worker_command(sweep: Sweep) -> list[str]:
    return [sys.executable, "-m", "charnn", "sweep", str(sweep.path), "--storage", sweep.storage,
            "--trials", str(sweep.trials), "--worker"]


def _run_processes(sweep: Sweep, workers: int) -> None:
    """Start `workers` worker processes (BLAS threads are read when numpy loads, so not threads) and wait."""
    env = blas_env(workers)
    # own sessions: a Ctrl-C reaches this process only, and each one is passed on to every worker
    procs = [subprocess.Popen(worker_command(sweep), env=env, start_new_session=True) for _ in range(workers)]

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, forward) if main else None
    try:
        codes = [p.wait() for p in procs]
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    if 130 in codes:
        raise SweepInterrupted(f"interrupted; run the same command again to continue sweep {sweep.name}")
    failed = [code for code in codes if code != 0]
    if failed:
        raise CharnnError(f"{len(failed)} of {workers} workers stopped with an error (see above); "
                          "every finished trial is kept: run the same command again to continue")


def prepare_corpus(sweep: Sweep, log=lambda message: None) -> None:
    """Build the trials' shared id cache once, before several workers would race to build it."""
    load_corpus(trial_config(sweep, {}, 0), log)


def run_sweep(sweep: Sweep, workers: int = 1, log=lambda message: None) -> dict:
    """Run trials here (in this process, or in `workers` processes) until the target; return the summary."""
    study = open_study(sweep)  # a bad storage fails here, before any trial
    prepare_corpus(sweep, log)
    if workers == 1:
        run_worker(sweep, log, study)
    else:
        fail_dead_trials(study, log)  # so that a dead worker's trial does not count as running
        if _more_to_run(study, sweep):
            _run_processes(sweep, workers)
    write_best(study, sweep)
    return summarize(study, sweep)


def status(sweep: Sweep) -> dict:
    """The summary of an existing sweep, without running trials."""
    return summarize(open_study(sweep, create=False), sweep)


# ---- results ----------------------------------------------------------------------------------


def _best(trials):
    done = [t for t in trials if t.state.name == "COMPLETE" and t.value is not None]
    return min(done, key=lambda t: (t.value, t.number)) if done else None


def summarize(study, sweep: Sweep) -> dict:
    """The --json object: study, storage, best and every trial."""
    trials = study.get_trials(deepcopy=False)
    now = time.time()
    rows = []
    for t in trials:
        start = t.datetime_start.timestamp() if t.datetime_start else None
        end = t.datetime_complete.timestamp() if t.datetime_complete else now
        rows.append({
            "number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
            "run_dir": t.user_attrs.get("run_dir"), "duration_s": None if start is None else round(end - start, 1),
            "error": t.user_attrs.get("error"),
        })
    best = _best(trials)
    return {
        "study": study.study_name,
        "storage": shown_storage(sweep.storage),
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params,
                                           "run_dir": best.user_attrs.get("run_dir")},
        "trials": rows,
    }


def write_best(study, sweep: Sweep) -> Path | None:
    """Write the best trial's resolved config as best.yaml, renamed so `charnn train` starts a new run."""
    best = _best(study.get_trials(deepcopy=False))
    if best is None or "config" not in best.user_attrs:
        return None
    raw = json.loads(json.dumps(best.user_attrs["config"]))
    raw["run"].update(name=f"{sweep.name}-best", dir=sweep.runs_dir)
    cfg = from_dict(raw, source=str(sweep.best_path))
    header = (f"# The best trial of sweep {sweep.name}: trial {best.number}, {sweep.objective} {best.value:.4f}\n"
              f"# ({best.user_attrs.get('run_dir')}). Train it with: charnn train {sweep.best_path}\n")
    sweep.folder.mkdir(parents=True, exist_ok=True)
    # workers write it concurrently: each writes its own temporary file and renames it into place
    write_text_atomically(sweep.best_path, header + dump_yaml(cfg))
    return sweep.best_path
