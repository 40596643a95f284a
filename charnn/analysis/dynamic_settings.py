"""Dynamic evaluation's settings and their tuned defaults (no NumPy: the command line reads them
for its --help without loading the maths)."""

from __future__ import annotations

from dataclasses import dataclass

from charnn.errors import ParameterError

# tuned on the last 20,000 characters of Tiny Shakespeare's training split with an H=512 LSTM
# (benchmarks/tune_dynamic.py; docs/results.md, "Dynamic evaluation"), never on a text being scored
SEGMENT_LEN, LR, DECAY = 50, 3e-4, 1e-3


@dataclass(frozen=True)
class DynamicSettings:
    segment_len: int = SEGMENT_LEN
    lr: float = LR
    decay: float = DECAY

    def check(self) -> None:
        if self.segment_len < 1:
            raise ParameterError("{segment_len} must be >= 1 (got {got})", got=self.segment_len)
        if not self.lr > 0:
            raise ParameterError("{dynamic_lr} must be > 0 (got {got})", got=self.lr)
        if not 0 <= self.decay < 1:
            raise ParameterError("{dynamic_decay} must be in [0, 1) (got {got})", got=self.decay)
