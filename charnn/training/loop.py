"""The training loop: truncated BPTT over B streams, clipping, updates, evaluation, checkpoints.

One step (`train_step`) is forward, backward, a guard against non-finite numbers, clipping
and the update. The loop around it (`train`) adds the schedule, logging, evaluation,
checkpoints, and the ways a run ends: its step or time budget, Ctrl-C, or divergence.
It knows nothing of terminals: it reports through a `Callback`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charnn.training import checkpoint, kernels
from charnn.nn import model
from charnn.training.checkpoint import Progress
from charnn.config import Config, ModelConfig, TrainConfig, resume_conflict, to_dict
from charnn.data.corpus import Corpus, StreamBatcher, load_corpus
from charnn.errors import CharnnError, TrainingDiverged, TrainingInterrupted, TrainingStopped  # noqa: F401  (their home was here)
from charnn.nn.evaluate import LN2, evaluate_ids
from charnn.procs import deferred_interrupt
from charnn.nn.optim import OptimizerSpec, Schedule, apply_update, clip_gradients, from_config, init_state
from charnn.training.rundir import RunDir
from charnn.nn.sampling import generate
from charnn.data.vocab import Vocab
from charnn.nn.workspace import FRESH, Workspace

# A finite loss that runs away: the smoothed loss above DIVERGE_FACTOR times its best and
# DIVERGE_MARGIN nats above ln V (far worse than guessing uniformly), DIVERGE_PATIENCE steps in a row.
DIVERGE_FACTOR, DIVERGE_MARGIN, DIVERGE_PATIENCE = 3.0, 3.0, 20


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
    train_loss: float | None  # smoothed
    val_loss: float | None  # last evaluation
    best_val_loss: float | None
    elapsed_s: float
    clip_fraction: float
    stop_reason: str  # steps | time | interrupted | diverged
    note: str | None = None  # what to tell the user besides the numbers (a resumed run that had already finished)
    kernels: str | None = None  # the path the steps ran on: fast | numpy (None: no step ran)

    def as_json(self) -> dict:
        """The keys `charnn train --json` prints."""
        return {
            "run_dir": str(self.run_dir), "steps": self.step, "chars": self.chars,
            "best_val_loss": self.best_val_loss, "last_val_loss": self.val_loss,
            "best_val_bpc": None if self.best_val_loss is None else self.best_val_loss / LN2,
            "elapsed_s": round(self.elapsed_s, 3), "chars_per_s": round(self.chars / max(self.elapsed_s, 1e-9), 1),
            "stopped": self.stop_reason, "checkpoint": str(self.run_dir / "best.npz") if (self.run_dir / "best.npz").exists() else None,
            "kernels": self.kernels,
        }


@dataclass
class TrainState:
    """Everything that must survive a resume for the run to continue bit-for-bit."""

    params: dict
    optim_state: dict
    hidden: list
    rng: np.random.Generator
    progress: Progress


# ---- one step ----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepResult:
    loss: float  # mean over the chunk, nats/char
    grad_norm: float  # global norm before clipping
    clipped: bool
    applied: bool  # False: the loss or gradient was not finite and the parameters were left alone


def train_step(state: TrainState, x: np.ndarray, y: np.ndarray, spec: OptimizerSpec, lr: float,
               t: TrainConfig, m: ModelConfig, ws: Workspace = FRESH, fast=None) -> StepResult:
    """Forward and backward on chunk (x, y), clip, update in place; the last state is carried on.

    A non-finite loss or gradient is reported, not applied: the parameters stay as they were.
    fast: charnn.nn.fast.model (see charnn/training/kernels.py) to run the step on its kernels.
    """
    if fast is not None:
        return _fast_step(state, x, y, spec, lr, t, m, ws, fast)
    loss, last, cache = model.forward(state.params, x, y, state.hidden, cell=m.cell, noise=model.Noise.of(m),
                                      rng=state.rng, ws=ws)
    grads, _ = model.backward(state.params, cache, ws)
    ws.release(cache)
    grad_norm, clipped = clip_gradients(grads, t.grad_clip, t.clip_mode)
    applied = math.isfinite(loss) and math.isfinite(grad_norm)
    if applied:
        apply_update(spec, state.params, grads, state.optim_state, lr)
        state.hidden = last  # carried into the next chunk, not differentiated through
    return StepResult(loss, grad_norm, clipped, applied)


def _fast_step(state: TrainState, x, y, spec: OptimizerSpec, lr: float, t: TrainConfig, m: ModelConfig,
               ws: Workspace, fast) -> StepResult:
    """train_step on the kernels: the same step, clipping folded into the update (charnn/nn/fast)."""
    from charnn.nn.fast import optim as fast_optim

    loss, last, grads, held = fast.loss_and_grads(state.params, x, y, state.hidden, cell=m.cell,
                                                  noise=model.Noise.of(m), rng=state.rng, ws=ws)
    grad_norm, clipped, scale = fast_optim.clip(grads, t.grad_clip, t.clip_mode)
    applied = math.isfinite(loss) and math.isfinite(grad_norm)
    if applied:
        fast_optim.update(spec, state.params, grads, state.optim_state, lr, scale)
        state.hidden = last
    ws.give(*held)  # the gradient matrices, used up
    return StepResult(loss, grad_norm, clipped, applied)


def optimizer_spec(t: TrainConfig) -> OptimizerSpec:
    return from_config(OptimizerSpec, t)


def learning_rate(t: TrainConfig, step: int, elapsed_s: float) -> float:
    """The rate for 0-based `step`: warm-up, then the schedule over the step budget (or the time budget)."""
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    if t.max_minutes:
        progress = max(progress, elapsed_s / (t.max_minutes * 60))
    return from_config(Schedule, t)(step, progress)


# ---- starting and resuming -----------------------------------------------------------------


def default_run_dir(config: Config) -> Path:
    return Path(config.run.dir) / config.run.name


def new_state(config: Config, vocab: Vocab) -> TrainState:
    m = config.model
    rng = np.random.default_rng(config.run.seed)
    params = model.init_for(m, vocab.size, rng)
    if config.run.init_from:
        params = _weights_from(config.run.init_from, vocab, params)
    hidden = model.zero_state(params, config.train.batch_size, m.cell)
    return TrainState(params, init_state(optimizer_spec(config.train), params), hidden, rng, Progress())


def _weights_from(path: str, vocab: Vocab, fresh: dict) -> dict:
    """The weights of checkpoint `path`, which must match this run's vocabulary and shapes."""
    ckpt = checkpoint.load(path)
    theirs = ckpt.vocab.chars
    if list(theirs) != list(vocab.chars):
        missing = sorted(set(vocab.chars) - set(theirs))
        extra = sorted(set(theirs) - set(vocab.chars))
        raise CharnnError(
            f"run.init_from {path}: its vocabulary differs from this corpus's "
            f"(only here: {''.join(missing)!r}; only there: {''.join(extra)!r}); train on text with the same characters"
        )
    if set(ckpt.params) != set(fresh) or any(ckpt.params[k].shape != v.shape for k, v in fresh.items()):
        theirs_model = ckpt.config.model
        said = ", ".join(f"{k}={getattr(theirs_model, k)}" for k in ("cell", "hidden_size", "num_layers", "context"))
        raise CharnnError(f"run.init_from {path}: its model ({said}) is not this one; match model.cell, "
                          "hidden_size, num_layers and context")
    return {k: np.ascontiguousarray(ckpt.params[k], dtype=v.dtype) for k, v in fresh.items()}


def resume_state(config: Config, vocab: Vocab, run: RunDir) -> TrainState:
    """The state saved in the run's latest.npz, if this config may continue it."""
    ckpt = checkpoint.load(run.latest)
    meta = ckpt.meta
    conflict = resume_conflict(to_dict(ckpt.config), to_dict(config))
    if conflict:
        raise CharnnError(f"cannot resume {run.path}: {conflict}; to continue the run as it was trained, "
                          f"run {run.resume_command()}")
    if ckpt.vocab.chars != vocab.chars:
        raise CharnnError(f"cannot resume from {run.latest}: the corpus's characters have changed since it was written")
    expected = init_state(optimizer_spec(config.train), ckpt.params)
    if {k: v.shape for k, v in expected.items()} != {k: v.shape for k, v in ckpt.optim_state.items()}:
        raise CharnnError(f"cannot resume from {run.latest}: its optimizer state does not match train.optimizer")
    rng = np.random.default_rng()
    rng.bit_generator.state = meta["rng_state"]
    return TrainState(ckpt.params, ckpt.optim_state, ckpt.hidden, rng, checkpoint.progress_from(meta))


# ---- the loop --------------------------------------------------------------------------------


def train(config: Config, run_dir: str | Path | None = None, *, resume: bool = False, force: bool = False,
          callback: Callback | None = None, corpus: Corpus | None = None) -> TrainResult:
    """Train per `config`, writing config.yaml, metrics.jsonl, latest.npz and best.npz to run_dir.

    `corpus` replaces the config's own (an experiment training on a slice of it, say); its
    vocabulary must be the one the config's data gives, so checkpoints stay comparable.
    """
    cb = callback or Callback()
    run = RunDir(run_dir if run_dir is not None else default_run_dir(config))
    corpus = corpus or load_corpus(config, cb.on_message)
    t = config.train
    try:
        batcher = StreamBatcher(corpus.train, t.batch_size, t.seq_len)
    except CharnnError as e:  # named as the user set them (--set, --data) where they did: not by a preset's file
        said = [config.origins[k] for k in ("train.batch_size", "train.seq_len") if k in config.origins]
        raise CharnnError(f"{', '.join(said) or config.source}: train.batch_size x train.seq_len: {e}") from None
    fresh = None if resume else new_state(config, corpus.vocab)  # before touching the run directory
    with run.locked():
        run.start(resume=resume, force=force)
        state = resume_state(config, corpus.vocab, run) if resume else fresh
        loop = _Loop(config, corpus, batcher, state, run, cb)
        if resume and finished(t, state.progress):  # nothing to do, and nothing in the run is touched
            return loop.finished_result()
        run.write_config(config)
        if resume:
            run.trim_metrics(state.progress.step)
        return loop.run(resumed=resume)


def finished(t: TrainConfig, progress: Progress) -> str | None:
    """Which budget a run has used up ("steps" or "time"), or None while it has some left."""
    if progress.step >= t.steps:
        return "steps"
    if t.max_minutes and progress.elapsed_s >= t.max_minutes * 60:
        return "time"
    return None


class _Loop:
    """The steps of one run; each method is one concern of the loop."""

    def __init__(self, config: Config, corpus: Corpus, batcher: StreamBatcher, state: TrainState, run: RunDir,
                 cb: Callback):
        self.config, self.corpus, self.batcher, self.state, self.run_dir, self.cb = \
            config, corpus, batcher, state, run, cb
        self.p = state.progress
        self.spec = optimizer_spec(config.train)
        self.chars_per_step = config.train.batch_size * config.train.seq_len
        self.has_val = len(corpus.val) >= 2
        self.diverging_steps = 0
        self.saved_step = self.p.step if run.latest.exists() else None  # the step latest.npz holds
        self.ws = Workspace()  # the big per-step arrays, reused from step to step
        self.kernels, self.fast = None, None  # chosen when the steps start (charnn/training/kernels.py)

    def run(self, resumed: bool) -> TrainResult:
        t, r, p = self.config.train, self.config.run, self.p
        self.kernels, self.fast = kernels.choose(self.config, self.cb.on_message)
        self.cb.on_start({
            "run_dir": str(self.run_dir.path), "vocab_size": self.corpus.vocab.size,
            "train_chars": len(self.corpus.train), "val_chars": len(self.corpus.val),
            "params": sum(a.size for a in self.state.params.values()), "start_step": p.step, "steps": t.steps,
            "resumed": resumed, "max_minutes": t.max_minutes, "start_elapsed_s": p.elapsed_s, "kernels": self.kernels,
        })
        budget_s = t.max_minutes * 60
        clock_start, elapsed_before = time.perf_counter(), p.elapsed_s
        self.window_start, self.window_chars = clock_start, 0
        every_s = r.eval_every_minutes * 60
        next_timed_eval = (p.elapsed_s // every_s + 1) * every_s if every_s else math.inf
        stop_reason = "steps"
        with deferred_interrupt() as interrupted:
            while p.step < t.steps:
                if budget_s and p.elapsed_s >= budget_s:
                    stop_reason = "time"
                    if self.diverging_steps:
                        self.ran_away()
                    break
                step = self.step()
                p.elapsed_s = elapsed_before + time.perf_counter() - clock_start
                self.log_step(step)
                if (r.eval_every and p.step % r.eval_every == 0) or p.elapsed_s >= next_timed_eval:
                    self.evaluate()
                    while next_timed_eval <= p.elapsed_s:
                        next_timed_eval += every_s
                if r.sample_every and p.step % r.sample_every == 0:
                    self.preview()
                if r.checkpoint_every and p.step % r.checkpoint_every == 0 and not self.diverging_steps:
                    self.save(self.run_dir.latest)
                if interrupted.is_set():
                    self.save(self.run_dir.latest)
                    raise TrainingInterrupted(f"interrupted at step {p.step}; saved {self.run_dir.latest}",
                                              self.result("interrupted"), f"Resume with: {self.run_dir.resume_command()}")
        if not (p.history and p.history[-1]["step"] == p.step):
            self.evaluate()
        self.save(self.run_dir.latest)
        if not self.run_dir.best.exists():
            p.best_step = p.step
            self.save(self.run_dir.best)
        return self.result(stop_reason)

    def step(self) -> StepResult:
        """One training step, and the guards that stop a run going bad."""
        state, p, t = self.state, self.p, self.config.train
        if self.batcher.starts_epoch(p.step):
            state.hidden = model.zero_state(state.params, t.batch_size, self.config.model.cell)
        x, y = self.batcher.chunk(p.step)
        lr = learning_rate(t, p.step, p.elapsed_s)
        result = train_step(state, x, y, self.spec, lr, t, self.config.model, self.ws, self.fast)
        if not result.applied:  # stopped before the bad update was applied
            what = f"the loss became {result.loss}" if not math.isfinite(result.loss) \
                else f"the gradient norm became {result.grad_norm}"
            self.diverged(f"{what} at step {p.step + 1}")
        p.step += 1
        p.clip_count += int(result.clipped)
        p.smooth_loss = result.loss if p.smooth_loss is None else 0.95 * p.smooth_loss + 0.05 * result.loss
        p.best_smooth_loss = min(p.smooth_loss, p.best_smooth_loss if p.best_smooth_loss is not None else math.inf)
        far_above = p.smooth_loss > DIVERGE_FACTOR * p.best_smooth_loss and \
            p.smooth_loss > math.log(self.corpus.vocab.size) + DIVERGE_MARGIN
        self.diverging_steps = self.diverging_steps + 1 if far_above else 0
        if self.diverging_steps >= DIVERGE_PATIENCE or (self.diverging_steps and p.step == t.steps):
            self.ran_away()
        self.lr = lr
        return result

    def ran_away(self):
        p = self.p
        self.diverged(f"the loss ran away: smoothed {p.smooth_loss:.4g} nats/char at step {p.step}, against a "
                      f"best of {p.best_smooth_loss:.4g} (guessing uniformly scores {math.log(self.corpus.vocab.size):.3g})")

    def diverged(self, what: str):
        t = self.config.train
        kept = [f"{path} (step {step})" for path, step in ((self.run_dir.latest, self.saved_step),
                                                          (self.run_dir.best, self.p.best_step)) if step is not None]
        kept = f"kept the last good checkpoints: {', '.join(kept)}" if kept else "no checkpoint was written"
        raise TrainingDiverged(f"{what}; lower train.lr (now {t.lr:g}) or set train.grad_clip (now {t.grad_clip:g}); "
                               f"{kept}", self.result("diverged"))

    def log_step(self, step: StepResult) -> None:
        p, t = self.p, self.config.train
        self.window_chars += self.chars_per_step
        if p.step % self.config.run.log_every and p.step != t.steps:
            return
        now = time.perf_counter()
        record = {
            "step": p.step, "chars": p.step * self.chars_per_step, "train_loss": step.loss, "lr": self.lr,
            "grad_norm": step.grad_norm, "clipped": step.clipped,
            "chars_per_s": round(self.window_chars / max(now - self.window_start, 1e-9), 1),
            "elapsed_s": round(p.elapsed_s, 3), "kernels": self.kernels,
        }
        self.window_start, self.window_chars = now, 0
        self.run_dir.log(record)
        self.cb.on_step(dict(record, smooth_loss=p.smooth_loss, val_loss=p.val_loss))

    def evaluate(self) -> None:
        """Score the validation text (if any) and keep best.npz for the lowest score."""
        p = self.p
        score = p.smooth_loss  # without validation text, "best" means lowest smoothed train loss
        if self.has_val:
            p.val_loss = score = evaluate_ids(self.state.params, self.corpus.val, cell=self.config.model.cell,
                                              streams=self.config.run.eval_streams, ws=self.ws,
                                              forward=self.fast.forward if self.fast else None).nats_per_char
            record = {"step": p.step, "chars": p.step * self.chars_per_step, "val_loss": p.val_loss,
                      "val_bpc": p.val_loss / LN2, "elapsed_s": round(p.elapsed_s, 3)}
            p.history.append(record)
            self.run_dir.log(record)
            self.cb.on_eval(record)
        if self.diverging_steps:  # a model on its way to diverging is never kept as the best
            return
        if score is not None and math.isfinite(score) and (p.best_loss is None or score < p.best_loss):
            p.best_loss, p.best_step = score, p.step
            self.save(self.run_dir.best)

    def preview(self) -> None:
        s, step = self.config.sample, self.p.step
        rng = np.random.default_rng([self.config.run.seed, step])  # its own RNG: training's is untouched
        text = "".join(generate(self.state.params, self.config.model.cell, self.corpus.vocab, "", min(s.length, 200),
                                temperature=s.temperature, top_k=s.top_k, rng=rng,
                                char_counts=self.corpus.prepared.counts, kernels=self.kernels))
        self.run_dir.log_sample({"step": step, "temperature": s.temperature, "top_k": s.top_k, "text": text})
        self.cb.on_sample(step, text)

    def save(self, path: Path) -> None:
        state, p = self.state, self.p
        meta = checkpoint.training_meta(self.corpus.vocab.chars, to_dict(self.config), state.rng.bit_generator.state,
                                        p, self.chars_per_step, self.corpus.prepared.source_sha256,
                                        self.corpus.prepared.counts)
        try:
            self.run_dir.save(path, checkpoint.Checkpoint(state.params, meta, state.optim_state, state.hidden))
        except checkpoint.NonFiniteError as e:
            self.diverged(f"the update of step {p.step} made the model non-finite ({e})")
        if path == self.run_dir.latest:
            self.saved_step = p.step

    def finished_result(self) -> TrainResult:
        """A resumed run whose budget was already spent: how far it got, and how to give it more."""
        t, p = self.config.train, self.p
        if finished(t, p) == "steps":
            used = f"it has trained all {t.steps:,} steps of train.steps"
            more = f"resume it with a larger train.steps (e.g. {2 * t.steps})"
        else:
            used = f"it has used its train.max_minutes={t.max_minutes:g} ({p.elapsed_s / 60:.1f} minutes of training)"
            more = f"resume it with a larger train.max_minutes (e.g. {2 * t.max_minutes:.3g})"
        result = self.result(finished(t, p))
        result.note = f"{self.run_dir.path} is already finished: {used}; to train it further, {more}"
        return result

    def result(self, stop_reason: str) -> TrainResult:
        p = self.p
        return TrainResult(
            run_dir=self.run_dir.path, step=p.step, chars=p.step * self.chars_per_step, train_loss=p.smooth_loss,
            val_loss=p.val_loss, best_val_loss=p.best_loss if self.has_val else None, elapsed_s=p.elapsed_s,
            clip_fraction=p.clip_count / max(1, p.step), stop_reason=stop_reason, kernels=self.kernels,
        )
