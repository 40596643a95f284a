"""The training loop: truncated BPTT over B streams, clipping, updates, evaluation, checkpoints.

The loop knows nothing of terminals: it reports through a `Callback`, and raises
CharnnError subclasses for the ways a run can end early (interrupted, diverged).
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from charnn import __version__, checkpoint, model
from charnn.config import Config, dump_yaml, to_dict
from charnn.data import StreamBatcher, split_ids
from charnn.errors import CharnnError
from charnn.evaluate import LN2, evaluate_ids
from charnn.prepare import PreparedCorpus, prepare
from charnn.optim import OptimizerSpec, Schedule, apply_update, clip_gradients, init_state
from charnn.sample import generate
from charnn.vocab import Vocab


class TrainingInterrupted(CharnnError):
    """Ctrl-C: latest.npz was saved at a step boundary and the run can be resumed."""


class TrainingDiverged(CharnnError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class Callback:
    """Hooks the loop calls; override what you need (the CLI draws progress with them)."""

    def on_message(self, text: str) -> None: ...

    def on_start(self, info: dict) -> None: ...

    def on_step(self, metrics: dict) -> None: ...

    def on_eval(self, metrics: dict) -> None: ...

    def on_sample(self, step: int, text: str) -> None: ...


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    chars: int
    train_loss: float  # smoothed
    val_loss: float | None  # last evaluation
    best_val_loss: float | None
    elapsed_s: float
    clip_fraction: float
    stop_reason: str  # "steps" or "time"


@dataclass
class _State:
    """Everything that must survive a resume for the run to continue bit-for-bit."""

    params: dict
    optim_state: dict
    hidden: list
    rng: np.random.Generator
    step: int = 0
    smooth_loss: float | None = None
    best_loss: float | None = None
    val_loss: float | None = None
    clip_count: int = 0
    elapsed_s: float = 0.0
    history: list = field(default_factory=list)


@dataclass(frozen=True)
class Corpus:
    vocab: Vocab
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    prepared: PreparedCorpus


def cache_root(config: Config) -> Path:
    """Prepared ids live beside the runs, shared by every run of the same source."""
    return Path(config.run.dir) / ".cache"


def load_corpus(config: Config, log=lambda message: None) -> Corpus:
    """Prepare (or reuse) the corpus's ids, with the vocabulary built from all of it, and split them."""
    prepared = prepare(config.data, cache_root(config), log)
    splits = split_ids(prepared.ids, config.data.val_fraction, config.data.test_fraction)
    return Corpus(prepared.vocab, splits.train, splits.val, splits.test, prepared)


def run_dir_for(config: Config) -> Path:
    return Path(config.run.dir) / config.run.name


def _spec(config: Config) -> OptimizerSpec:
    t = config.train
    return OptimizerSpec(name=t.optimizer, momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay)


def _schedule(config: Config) -> Schedule:
    t = config.train
    return Schedule(t.lr, t.lr_schedule, t.warmup_steps, t.min_lr, t.decay_rate, t.decay_every)


@contextmanager
def _deferred_interrupt():
    """Turn the first Ctrl-C into a flag the loop checks between steps (a second one aborts)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def _new_state(config: Config, vocab: Vocab) -> _State:
    m = config.model
    rng = np.random.default_rng(config.run.seed)
    params = model.init_params(
        vocab.size, m.hidden_size, m.num_layers, init=m.init, scale=m.init_scale, rng=rng, dtype=np.dtype(m.dtype),
        cell=m.cell,
    )
    if config.run.init_from:
        params = _weights_from(config.run.init_from, vocab, params)
    hidden = model.zero_state(params, config.train.batch_size)
    return _State(params, init_state(_spec(config), params), hidden, rng)


def _weights_from(path: str, vocab: Vocab, fresh: dict) -> dict:
    """The weights of checkpoint `path`, which must match this run's vocabulary and shapes."""
    ckpt = checkpoint.load(path)
    theirs = ckpt.vocab_chars
    if list(theirs) != list(vocab.chars):
        missing = sorted(set(vocab.chars) - set(theirs))
        extra = sorted(set(theirs) - set(vocab.chars))
        raise CharnnError(
            f"run.init_from {path}: its vocabulary differs from this corpus's "
            f"(only here: {''.join(missing)!r}; only there: {''.join(extra)!r}); "
            "train on text with the same characters"
        )
    for name, value in fresh.items():
        if ckpt.params[name].shape != value.shape:
            raise CharnnError(f"run.init_from {path}: {name} has shape {ckpt.params[name].shape}, "
                              f"this model needs {value.shape}; match model.hidden_size and num_layers")
    return {k: np.ascontiguousarray(ckpt.params[k], dtype=v.dtype) for k, v in fresh.items()}


def _resume_state(config: Config, vocab: Vocab, path: Path) -> _State:
    ckpt = checkpoint.load(path)
    meta = ckpt.meta
    if list(meta["vocab"]) != list(vocab.chars):
        raise CharnnError(f"cannot resume from {path}: the corpus's characters have changed since it was written")
    if meta["config"]["model"] != to_dict(config)["model"]:
        raise CharnnError(f"cannot resume from {path}: the model section differs from the one it was trained with")
    if [h.shape[0] for h in ckpt.hidden] != [config.train.batch_size] * config.model.num_layers:
        raise CharnnError(f"cannot resume from {path}: train.batch_size differs from the one it was trained with")
    expected = init_state(_spec(config), ckpt.params)
    if {k: v.shape for k, v in expected.items()} != {k: v.shape for k, v in ckpt.optim_state.items()}:
        raise CharnnError(f"cannot resume from {path}: train.optimizer differs from the one it was trained with")
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng_state"]
    return _State(
        params=ckpt.params,
        optim_state=ckpt.optim_state,
        hidden=ckpt.hidden,
        rng=rng,
        step=meta["step"],
        smooth_loss=meta["smooth_loss"],
        best_loss=meta["best_loss"],
        val_loss=meta["val_loss"],
        clip_count=meta["clip_count"],
        elapsed_s=meta["elapsed_s"],
        history=meta["history"],
    )


@contextmanager
def _file_errors(what: str, fix: str):
    """Turn a file-system error into the project's one-line error."""
    try:
        yield
    except OSError as e:
        raise CharnnError(f"cannot {what}: {e.strerror or e}; {fix}") from None


def _save(path: Path, state: _State, config: Config, vocab: Vocab) -> None:
    meta = {
        "charnn_version": __version__,
        "vocab": list(vocab.chars),
        "config": to_dict(config),
        "step": state.step,
        "data_position": state.step,  # chunks consumed: the batcher serves chunk `step` next
        "rng_state": state.rng.bit_generator.state,
        "smooth_loss": state.smooth_loss,
        "best_loss": state.best_loss,
        "best_val_loss": state.best_loss if state.val_loss is not None else None,
        "val_loss": state.val_loss,
        "clip_count": state.clip_count,
        "elapsed_s": state.elapsed_s,
        "history": state.history,
    }
    with _file_errors(f"write checkpoint {path}", "the previous one is intact"):
        checkpoint.save(path, checkpoint.Checkpoint(state.params, meta, state.optim_state, state.hidden))


def _trim_metrics(path: Path, step: int) -> None:
    """On resume, drop metrics lines written after the checkpoint (they will be logged again)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError, TypeError):
            pass  # a line cut short by a crash
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _prepare_run_dir(run_dir: Path, config: Config, resume: bool, force: bool) -> None:
    latest = run_dir / "latest.npz"
    if resume:
        if not latest.exists():
            raise CharnnError(f"nothing to resume: {latest} does not exist; start the run without --resume")
        return
    if run_dir.exists() and any(run_dir.iterdir()):
        if not force:
            raise CharnnError(
                f"run directory {run_dir} already exists; use --resume to continue it, --force to overwrite it, "
                "or choose another with --run-dir or --set run.name=..."
            )
        for name in ("latest.npz", "best.npz", "metrics.jsonl", "config.yaml"):
            (run_dir / name).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")


def train(
    config: Config,
    run_dir: str | Path | None = None,
    *,
    resume: bool = False,
    force: bool = False,
    callback: Callback | None = None,
) -> TrainResult:
    """Train per `config`, writing config.yaml, metrics.jsonl, latest.npz and best.npz to run_dir."""
    cb = callback or Callback()
    run_dir = Path(run_dir) if run_dir is not None else run_dir_for(config)
    corpus = load_corpus(config, cb.on_message)
    t = config.train
    try:
        batcher = StreamBatcher(corpus.train, t.batch_size, t.seq_len)
    except CharnnError as e:
        raise CharnnError(f"{config.source}: train.batch_size x train.seq_len: {e}") from None
    latest, best, metrics_path = run_dir / "latest.npz", run_dir / "best.npz", run_dir / "metrics.jsonl"
    state = None if resume else _new_state(config, corpus.vocab)  # before touching the run directory
    with _file_errors(f"use run directory {run_dir}", "choose another with --run-dir"):
        _prepare_run_dir(run_dir, config, resume, force)
    if resume:
        state = _resume_state(config, corpus.vocab, latest)
    if resume:
        _trim_metrics(metrics_path, state.step)
    spec, schedule = _spec(config), _schedule(config)
    r = config.run
    budget_s = t.max_minutes * 60
    chars_per_step = t.batch_size * t.seq_len
    has_val = len(corpus.val) >= 2
    cb.on_start({
        "run_dir": str(run_dir), "vocab_size": corpus.vocab.size, "train_chars": len(corpus.train),
        "val_chars": len(corpus.val), "params": sum(p.size for p in state.params.values()),
        "start_step": state.step, "steps": t.steps, "resumed": resume,
    })

    def log(record: dict) -> None:
        with _file_errors(f"write {metrics_path}", "check the disk"), open(metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def evaluate_and_keep_best() -> None:
        score = state.smooth_loss  # without validation text, "best" means lowest smoothed train loss
        if has_val:
            state.val_loss = score = evaluate_ids(state.params, corpus.val, streams=r.eval_streams).nats_per_char
            record = {"step": state.step, "chars": state.step * chars_per_step, "val_loss": state.val_loss,
                      "val_bpc": state.val_loss / LN2, "elapsed_s": round(state.elapsed_s, 3)}
            state.history.append(record)
            log(record)
            cb.on_eval(record)
        if score is not None and (state.best_loss is None or score < state.best_loss):
            state.best_loss = score
            _save(best, state, config, corpus.vocab)

    stop_reason = "steps"
    window_start, window_chars = time.perf_counter(), 0
    # elapsed_s is wall-clock training time (evaluations and checkpoints included), summed over resumes
    clock_start, elapsed_before = time.perf_counter(), state.elapsed_s
    next_timed_eval = (state.elapsed_s // (r.eval_every_minutes * 60) + 1) * r.eval_every_minutes * 60 \
        if r.eval_every_minutes else math.inf
    with _deferred_interrupt() as interrupted:
        while state.step < t.steps:
            if budget_s and state.elapsed_s >= budget_s:
                stop_reason = "time"
                break
            if batcher.starts_epoch(state.step):
                state.hidden = model.zero_state(state.params, t.batch_size)
            x, y = batcher.chunk(state.step)
            loss, hidden, cache = model.forward(
                state.params, x, y, state.hidden, dropout=config.model.dropout, rng=state.rng
            )
            grads, _ = model.backward(state.params, cache)
            del cache  # its arrays go back to the pool for the next step's forward
            grad_norm, clipped = clip_gradients(grads, t.grad_clip, t.clip_mode)
            if not (math.isfinite(loss) and math.isfinite(grad_norm)):  # stop before a bad update is applied
                what = f"the loss became {loss}" if not math.isfinite(loss) else f"the gradient norm became {grad_norm}"
                kept = f"the last good checkpoint {latest} is kept" if latest.exists() else "no checkpoint was written yet"
                raise TrainingDiverged(
                    f"{what} at step {state.step + 1}; lower train.lr (now {t.lr:g}) or set "
                    f"train.grad_clip (now {t.grad_clip:g}); {kept}"
                )
            progress = (state.step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
            if budget_s:
                progress = max(progress, state.elapsed_s / budget_s)
            lr = schedule(state.step, progress)
            apply_update(spec, state.params, grads, state.optim_state, lr)
            state.hidden = hidden  # carried into the next chunk, not differentiated through
            state.step += 1
            state.clip_count += int(clipped)
            state.smooth_loss = loss if state.smooth_loss is None else 0.95 * state.smooth_loss + 0.05 * loss
            state.elapsed_s = elapsed_before + time.perf_counter() - clock_start
            window_chars += chars_per_step

            if state.step % r.log_every == 0 or state.step == t.steps:
                now = time.perf_counter()
                record = {
                    "step": state.step, "chars": state.step * chars_per_step, "train_loss": loss, "lr": lr,
                    "grad_norm": grad_norm, "clipped": clipped,
                    "chars_per_s": round(window_chars / max(now - window_start, 1e-9), 1),
                    "elapsed_s": round(state.elapsed_s, 3),
                }
                window_start, window_chars = now, 0
                log(record)
                cb.on_step(dict(record, smooth_loss=state.smooth_loss, val_loss=state.val_loss))
            if (r.eval_every and state.step % r.eval_every == 0) or state.elapsed_s >= next_timed_eval:
                evaluate_and_keep_best()
                while next_timed_eval <= state.elapsed_s:
                    next_timed_eval += r.eval_every_minutes * 60
            if r.sample_every and state.step % r.sample_every == 0:
                cb.on_sample(state.step, preview(state.params, corpus.vocab, config, state.step))
            if r.checkpoint_every and state.step % r.checkpoint_every == 0:
                _save(latest, state, config, corpus.vocab)
            if interrupted.is_set():
                _save(latest, state, config, corpus.vocab)
                raise TrainingInterrupted(
                    f"interrupted at step {state.step}; saved {latest}. Resume with: "
                    f"charnn train {config.source} --resume" + (f" --run-dir {run_dir}" if run_dir != run_dir_for(config) else "")
                )
    if not (state.history and state.history[-1]["step"] == state.step):
        evaluate_and_keep_best()
    _save(latest, state, config, corpus.vocab)
    if not best.exists():
        _save(best, state, config, corpus.vocab)
    return TrainResult(
        run_dir=run_dir, step=state.step, chars=state.step * chars_per_step, train_loss=state.smooth_loss,
        val_loss=state.val_loss, best_val_loss=state.best_loss if has_val else None, elapsed_s=state.elapsed_s,
        clip_fraction=state.clip_count / max(1, state.step), stop_reason=stop_reason,
    )


def preview(params: dict, vocab: Vocab, config: Config, step: int) -> str:
    """A short sample with the config's sampling settings, from its own RNG (training's is untouched)."""
    s = config.sample
    rng = np.random.default_rng([config.run.seed, step])
    return "".join(generate(params, vocab, "", min(s.length, 200), temperature=s.temperature, top_k=s.top_k, rng=rng))
