"""Splitting a corpus and laying it out as B contiguous streams cut into chunks of T (char-rnn's layout)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charnn.config import Config
from charnn.errors import CharnnError
from charnn.data.prepare import PreparedCorpus, prepare
from charnn.data.vocab import Vocab


@dataclass(frozen=True)
class Splits:
    """Contiguous train | val | test id arrays; val and test are the tail of the text."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_ids(ids: np.ndarray, val_fraction: float, test_fraction: float) -> Splits:
    """Cut `ids` into train, then val, then test, so the tail is held out as other tools do.

    n_train = int(n * (1 - val - test)), as nanoGPT's int(n * 0.9): the same split, char for char.
    """
    n = len(ids)
    n_train = int(n * (1 - val_fraction - test_fraction) + 1e-9)
    n_test = int(n * test_fraction + 1e-9)
    n_val = n - n_train - n_test
    return Splits(
        train=ids[:n_train],
        val=ids[n_train : n_train + n_val],
        test=ids[n_train + n_val :],
    )


class StreamBatcher:
    """B contiguous streams over a 1-D id array, served as (inputs, targets) chunks of shape (B, T).

    Row b of chunk i+1 continues row b of chunk i, so carrying the hidden state across
    chunks is meaningful. After the last full chunk the streams start again (a new epoch).
    Each chunk is gathered on demand, so `ids` may be a memmap of any size.
    """

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int) -> None:
        if batch_size < 1 or seq_len < 1:
            raise CharnnError(f"batch_size and seq_len must be >= 1 (got {batch_size}, {seq_len})")
        per_stream = (len(ids) - 1) // batch_size
        self.num_chunks = per_stream // seq_len
        if self.num_chunks < 1:
            need = batch_size * seq_len + 1
            raise CharnnError(
                f"the training text has {len(ids)} characters, fewer than one batch needs "
                f"(batch_size x seq_len + 1 = {need}); lower train.batch_size or train.seq_len"
            )
        self.batch_size, self.seq_len = batch_size, seq_len
        self._ids = ids
        self._window = np.arange(batch_size)[:, None] * per_stream + np.arange(seq_len + 1)  # (B, T+1)

    def chunk(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Chunk `index` (taken modulo the epoch length) as (inputs, targets), each (B, T) int32."""
        start = (index % self.num_chunks) * self.seq_len
        window = np.asarray(self._ids[self._window + start], dtype=np.int32)
        return window[:, :-1], window[:, 1:]

    def starts_epoch(self, index: int) -> bool:
        """True when chunk `index` begins the streams anew (the carried state must be reset)."""
        return index % self.num_chunks == 0


@dataclass(frozen=True)
class Corpus:
    """A prepared corpus: its vocabulary and its three splits (memmaps for file sources)."""

    vocab: Vocab
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    prepared: PreparedCorpus


def cache_root(config: Config) -> Path:
    """Prepared ids live beside the runs, shared by every run of the same source."""
    return Path(config.run.dir) / ".cache"


def load_corpus(config: Config, log: Callable[[str], None] = lambda message: None) -> Corpus:
    """Prepare (or reuse) the corpus's ids, with the vocabulary built from all of it, and split them."""
    prepared = prepare(config.data, cache_root(config), log)
    splits = split_ids(prepared.ids, config.data.val_fraction, config.data.test_fraction)
    return Corpus(prepared.vocab, splits.train, splits.val, splits.test, prepared)


SPLITS = ("train", "val", "test")


def checkpoint_split(config: Config, vocab_chars, corpus_sha256: str | None, split: str,
                     log: Callable[[str], None] = lambda message: None) -> np.ndarray:
    """The ids of one split of the corpus a checkpoint was trained on, checked to be that corpus."""
    if split not in SPLITS:
        raise CharnnError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    corpus = load_corpus(config, log)
    changed = list(corpus.vocab.chars) != list(vocab_chars) or \
        (corpus_sha256 is not None and corpus.prepared.source_sha256 != corpus_sha256)
    if changed:
        raise CharnnError(f"{corpus.prepared.source} has changed since the checkpoint was trained, so its {split} "
                          "split is not the one the run held out; score a file instead (charnn eval FILE)")
    ids = getattr(corpus, split)
    if len(ids) < 2:
        fix = "data.test_fraction > 0 holds one out" if split == "test" else "data.val_fraction > 0 holds one out"
        raise CharnnError(f"this run has no {split} split (data.{split}_fraction is "
                          f"{getattr(config.data, split + '_fraction', 0)}); {fix} in a new run, or score a file: "
                          "charnn eval FILE")
    return ids
