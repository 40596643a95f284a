"""The bias-variance decomposition of held-out log loss, measured on text.

Train the same config on K disjoint slices of the training text (T_1 ... T_K) and read the
held-out text with all K models. With p-bar the normalised geometric mean of their
predictions, p-bar(y) = exp(mean_k ln p_k(y)) / Z, the expected loss splits exactly
(Heskes 1998, "Bias/variance decompositions for likelihood-based estimators"):

    mean_k -ln p_k(y)  =  -ln p-bar(y)  +  mean_k KL(p-bar || p_k)
          total            bias + noise          variance

The first term is what the "average model" gets wrong (plus the text's own unpredictability);
the second how much the K models disagree, which is what more data would average away.
Repeated for each value of one config key (model size, dropout, weight decay, steps).
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charnn.training import checkpoint
from charnn.nn import model
from charnn.config import Config
from charnn.settings import load_config
from charnn.data.corpus import Corpus, load_corpus
from charnn.errors import CharnnError, ParameterError
from charnn.nn.evaluate import evaluate_ids
from charnn.analysis import figures
from charnn.training.loop import train


def _sums(log_probs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """[total, bias + noise, variance] summed over positions: log_probs (K, n, V) of K models, targets (n,)."""
    mean_log = log_probs.mean(axis=0)  # (n, V): ln of the unnormalised geometric mean
    shift = mean_log.max(axis=1, keepdims=True)
    log_pbar = mean_log - (np.log(np.exp(mean_log - shift).sum(axis=1, keepdims=True)) + shift)
    rows = np.arange(len(targets))
    variance = (np.exp(log_pbar)[None] * (log_pbar[None] - log_probs)).sum(axis=2).mean(axis=0)  # mean_k KL(p-bar || p_k)
    return np.array([-log_probs[:, rows, targets].mean(axis=0).sum(), -log_pbar[rows, targets].sum(), variance.sum()])


def decompose(log_probs: np.ndarray, targets: np.ndarray) -> tuple[float, float, float]:
    """(total, bias_noise, variance) averaged over positions: log_probs (K, n, V) of K models, targets (n,)."""
    total, bias_noise, variance = _sums(log_probs, targets) / len(targets)
    return float(total), float(bias_noise), float(variance)


def decompose_text(models: list, cell: str, ids: np.ndarray, chunk: int = 256) -> tuple[float, float, float]:
    """decompose() over a whole held-out text, the K models reading it side by side chunk by chunk
    (one stream each, from a zero state), so memory stays K x chunk x V whatever the text's length."""
    states = [model.zero_state(params, 1, cell) for params in models]
    sums, n = np.zeros(3), len(ids) - 1
    for start in range(0, n, chunk):
        x = np.asarray(ids[start : min(start + chunk, n)], np.int32)
        y = np.asarray(ids[start + 1 : start + 1 + len(x)], np.int32)
        log_probs = []
        for k, params in enumerate(models):
            _, states[k], cache = model.forward(params, x[None], y[None], states[k], cell=cell)
            log_probs.append(np.log(np.maximum(cache.probs.astype(np.float64), 1e-300)))
        sums += _sums(np.stack(log_probs), y.astype(np.int64))
    total, bias_noise, variance = sums / n
    return float(total), float(bias_noise), float(variance)


@dataclass(frozen=True)
class Plan:
    config: Path
    key: str
    values: list
    subsets: int


def plan(config: str | Path, vary: str, subsets: int) -> tuple[Plan, list[Config]]:
    """Check everything before any training: the key, every value (a full config each), the subsets."""
    key, sep, values = vary.partition("=")
    if not sep or not values.strip():
        raise CharnnError(f"--vary {vary!r}: expected KEY=v1,v2,... e.g. --vary model.hidden_size=32,64,128")
    if key.strip().startswith("data."):
        raise CharnnError(f"--vary {key}: the slices and the held-out text come from one corpus; vary a model, "
                          "train or run key")
    items = [v.strip() for v in values.split(",") if v.strip()]
    configs = [load_config(config, [f"{key}={v}"], origin="--vary {item}") for v in items]
    if subsets < 2:
        raise ParameterError("{subsets} must be >= 2 (got {got}): the variance is the disagreement of several models",
                             got=subsets)
    return Plan(Path(config), key, items, subsets), configs


def _slices(corpus: Corpus, cfg: Config, subsets: int) -> list[Corpus]:
    need = cfg.train.batch_size * cfg.train.seq_len + 1
    size = len(corpus.train) // subsets
    if size < need:
        raise ParameterError("{subsets} {got}: each slice would have {size:,} characters, fewer than one batch "
                             "needs (train.batch_size x train.seq_len + 1 = {need}); use fewer subsets",
                             got=subsets, size=size, need=need)
    return [Corpus(corpus.vocab, corpus.train[k * size : (k + 1) * size], corpus.val, corpus.test, corpus.prepared)
            for k in range(subsets)]


def quick(cfg: Config) -> Config:
    """The config cut to a run of seconds: at most 200 steps and 12 seconds, no evaluations."""
    t = dataclasses.replace(cfg.train, steps=min(cfg.train.steps, 200), max_minutes=0.2)
    r = dataclasses.replace(cfg.run, eval_every=0, eval_every_minutes=0.0, sample_every=0)
    return dataclasses.replace(cfg, train=t, run=r)


def write_csv(result: dict, path: str | Path) -> None:
    from charnn.files import write_text_atomically

    keys = ("value", "total", "bias_noise", "variance", "train_loss")
    lines = [",".join((result["key"],) + keys[1:])] + [",".join(str(r[k]) for k in keys) for r in result["rows"]]
    write_text_atomically(path, "\n".join(lines) + "\n")


def run(p: Plan, configs: list[Config], log: Callable[[str], None] = lambda message: None,
        held_out_chars: int | None = None, on_row: Callable[[dict], None] = lambda result: None) -> dict:
    """Train the K models for every value and decompose their held-out loss: the --json object.

    on_row gets the result so far after each value (to write it as it grows)."""
    corpus = load_corpus(configs[0])
    if len(corpus.val) < 2:
        raise CharnnError(f"{p.config} holds out no validation text (data.val_fraction); the decomposition "
                          "needs held-out text")
    for cfg in configs:
        _slices(corpus, cfg, p.subsets)  # every value's batch must fit a slice, before any training
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for value, cfg in zip(p.values, configs):
            models, train_losses = [], []
            for k, piece in enumerate(_slices(corpus, cfg, p.subsets)):
                result = train(cfg, Path(tmp) / f"{value}-{k}", force=True, corpus=piece)
                params = checkpoint.load(result.run_dir / "latest.npz").params  # the final model: best.npz peeked
                models.append(params)
                train_losses.append(evaluate_ids(params, piece.train, cell=cfg.model.cell, streams=64).nats_per_char)
                log(f"{p.key}={value}: model {k + 1}/{p.subsets} trained ({result.step} steps, {result.elapsed_s:.0f} s)")
            held_out = corpus.val[:held_out_chars] if held_out_chars else corpus.val
            total, bias_noise, variance = decompose_text(models, cfg.model.cell, held_out)
            rows.append({"value": value, "total": total, "bias_noise": bias_noise, "variance": variance,
                         "train_loss": float(np.mean(train_losses))})
            log(f"{p.key}={value}: total {total:.4f} = bias+noise {bias_noise:.4f} + variance {variance:.4f}; "
                f"training {rows[-1]['train_loss']:.4f} nats/char")
            on_row({"key": p.key, "subsets": p.subsets, "rows": rows})
    return {"key": p.key, "subsets": p.subsets, "rows": rows}


def plot(result: dict, path: str | Path) -> None:
    """The decomposition against the varied key's values (figures.bias_variance), written to path."""
    figures.to_file(figures.bias_variance(result), path)
