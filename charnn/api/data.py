"""Data as calls: prepare a corpus ahead of training (prepare_data), write a synthetic text (synth_text)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from charnn.api.configs import ConfigSource


def prepare_data(config: ConfigSource, log: Callable[[str], None] | None = None) -> dict:
    """Encode a config's corpus into the id cache training reads (streamed: any size; reused while the
    source is unchanged) and summarise it: characters, vocabulary, the most frequent and rarest
    characters, how many rare ones were mapped (data.min_char_count), split sizes, the cache.

    Examples:
        >>> charnn.prepare_data({"data": {"text": "hello"}})["vocab_size"]
        4
    """
    import numpy as np

    from charnn.api.configs import load_config
    from charnn.data.corpus import load_corpus

    cfg = load_config(config)
    corpus = load_corpus(cfg, log or (lambda message: None))
    prepared = corpus.prepared
    order = np.argsort(-prepared.counts, kind="stable")
    pairs = [(prepared.vocab.chars[i], int(prepared.counts[i])) for i in order if prepared.counts[i] > 0]
    return {
        "source": prepared.source, "chars": int(len(prepared.ids)), "vocab_size": prepared.vocab.size,
        "encoding": cfg.data.encoding, "most_frequent": pairs[:5], "rarest": pairs[::-1][:5],
        "replaced": prepared.replaced, "replaced_distinct": prepared.replaced_distinct,
        "train": len(corpus.train), "val": len(corpus.val), "test": len(corpus.test),
        "cache": str(prepared.cache_dir) if prepared.cache_dir else None, "reused": prepared.reused,
    }


def synth_text(task: str, out: str | Path, lag: int = 10, length: int = 200_000, rng_seed: int = 0,
               force: bool = False) -> dict:
    """Write a synthetic text that can only be predicted by remembering `lag` characters back ("delay":
    a marked letter recurs lag characters later; "brackets": nested brackets that close within lag),
    and beside it out.json with the best possible loss and the loss without that memory (returned).

    Examples:
        >>> charnn.synth_text("delay", "delay10.txt", lag=10, length=5000)["lag"]
        10
    """
    from charnn.data.synth import generate, write

    return write(generate(task, lag, length, rng_seed), Path(out), force=force)


def sweep(sweep_file: str | Path, storage: str | None = None, trials: int | None = None, workers: int = 1,
          status: bool = False, worker: bool = False, log: Callable[[str], None] | None = None) -> dict:
    r"""Search hyperparameters with Optuna (the sweep extra): every trial a run directory
    <run.dir>/<sweep>/trial-<n>/, `workers` processes here, more anywhere with the same storage;
    the best trial's config goes to <run.dir>/<sweep>/best.yaml. status=True only reads the study;
    worker=True runs trials in this process (what each worker process does) and returns {}.
    Returns {study, storage, trials: [{number, state, value, params, ...}], best}.

    Examples:
        >>> _ = open("tiny_sweep.yaml", "w").write(
        ...     "base: configs/demo.yaml\nspace:\n  train.lr: {low: 0.001, high: 0.01, log: true}\n"
        ...     "trials: 2\ntrial: {steps: 30}\n")
        >>> len(charnn.sweep("tiny_sweep.yaml")["trials"])
        2
    """
    from charnn.search import study
    from charnn.search.spec import load_sweep

    spec = load_sweep(sweep_file, storage, trials)
    log = log or (lambda message: None)
    if worker:
        study.run_worker(spec, log)
        return {}
    return study.status(spec) if status else study.run_sweep(spec, workers, log)
