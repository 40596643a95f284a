"""What inspect-gradients analyses: a trained checkpoint, or a freshly initialised model of a config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charnn.training import checkpoint
from charnn.nn import model
from charnn.settings import load_config
from charnn.data.corpus import Corpus, load_corpus
from charnn.errors import CharnnError, ParameterError
from charnn.data.vocab import Vocab


@dataclass(frozen=True)
class Subject:
    params: model.Params
    cell: str
    vocab: Vocab
    encoding: str  # data.encoding: how a given text maps to the model's symbols
    clip_fraction: float | None  # of the training steps (a checkpoint only)
    corpus: Corpus | None  # the model's own corpus, loaded only when no text is given

    def windows_source(self, steps: int | None) -> tuple[np.ndarray, str]:
        """(ids, name): the validation text, or the training text if it is too short."""
        from charnn.analysis.gradients import window_source

        return window_source(self.corpus.train, self.corpus.val, steps)


def fresh(config: str | Path, overrides: list[str], init_std: float | None, need_corpus: bool = True) -> Subject:
    """A model of `config` as training would start it, in float64; init_std draws weights from N(0, init_std^2)."""
    if init_std is not None and not init_std > 0:
        raise ParameterError("{init_std} must be > 0 (got {got})", got=init_std)
    extra = [f"model.init_scale={init_std}", "model.init=normal"] if init_std else []
    cfg = load_config(config, list(overrides) + extra)
    corpus = load_corpus(cfg)  # the vocabulary comes from the corpus
    m = cfg.model
    params = model.init_for(m, corpus.vocab.size, np.random.default_rng(cfg.run.seed), dtype=np.float64)
    return Subject(params, m.cell, corpus.vocab, cfg.data.encoding, None, corpus if need_corpus else None)


def trained(path: Path | None, need_corpus: bool = True) -> Subject:
    """The checkpoint at `path` (default: the most recent run's best); its corpus only when needed."""
    try:
        ckpt = checkpoint.load(path if path is not None else checkpoint.most_recent())
    except CharnnError as e:
        if path is None:
            raise CharnnError(f"{e}; or analyse a fresh model with --config CONFIG.yaml") from None
        raise
    step = ckpt.meta.get("step") or 0
    clip_fraction = ckpt.meta["clip_count"] / step if step and "clip_count" in ckpt.meta else None
    corpus = load_corpus(ckpt.config) if need_corpus else None
    return Subject(ckpt.params, ckpt.cell, ckpt.vocab, ckpt.config.data.encoding, clip_fraction, corpus)
