"""A config checked against what charnn can build: the schema (charnn/config.py) and the registries.

charnn/config.py owns the config's shape, types and ranges and imports none of the maths; the
choices that name an implementation belong to the registry that holds it: model.cell to the
cells (charnn/nn/cells), model.init to the initialisations (charnn/nn/model.py),
train.optimizer, train.lr_schedule and train.clip_mode to charnn/nn/optim.py, and train.kernels
to the fast path (charnn/nn/fast). Here both are
checked, with the cells' capabilities (gates for chrono, a recurrent matrix for weight drop,
a window for model.context), so every caller that reads a config uses `load_config` or
`from_dict` from this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from charnn import config
from charnn.config import Config, check, one_of
from charnn.nn import cells, fast, model, optim


def check_choices(cfg: Config) -> Config:
    """Check the registries' choices and the chosen cell's capabilities; returns cfg."""
    m, t = cfg.model, cfg.train
    one_of(m.cell, cells.CELLS, cfg, "model.cell")
    cell = cells.get(m.cell)
    gated = [name for name, c in cells.CELLS.items() if c.gate_names]
    windowed = [name for name, c in cells.CELLS.items() if c.windowed]
    check(m.gate_init == "default" or bool(cell.gate_names), cfg, "model.gate_init",
          f"chrono initialises gate biases: use it with model.cell {' or '.join(gated)}")
    check(m.weight_drop == 0 or bool(cell.recurrent_weight), cfg, "model.weight_drop",
          f"drops entries of the recurrent matrix, which the {m.cell} cell has not; use model.dropout")
    check(not cell.windowed or m.context >= 1, cfg, "model.context",
          f"the {m.cell} cell needs the number of characters it sees, >= 1 (e.g. 16)")
    check(cell.windowed or m.context == 0, cfg, "model.context",
          f"only the {' or '.join(windowed)} cell has a context window; a recurrent cell's memory is its state")
    one_of(m.init, model.INITS, cfg, "model.init")
    one_of(t.optimizer, optim.OPTIMIZERS, cfg, "train.optimizer")
    one_of(t.lr_schedule, optim.SCHEDULES, cfg, "train.lr_schedule")
    one_of(t.clip_mode, optim.CLIP_MODES, cfg, "train.clip_mode")
    one_of(t.kernels, fast.CHOICES, cfg, "train.kernels")
    return cfg


def from_dict(raw: Any, source: str = "<dict>", origins: dict | None = None) -> Config:
    """Build and fully check a Config from a parsed YAML mapping."""
    return check_choices(config.parse(raw, source, origins))


def load_config(path: str | Path, overrides: list[str] = (), origin: str = "--set {item}",
                values: dict | None = None) -> Config:
    """Read a YAML config, apply `values` and the `section.key=value` overrides, and fully check it
    (precedence and the error wording as charnn.config.read says)."""
    return check_choices(config.read(path, overrides, origin, values))


def build(raw: Any, source: str, base: Path, name: str, overrides: list[str] = (), origin: str = "--set {item}",
          values: dict | None = None) -> Config:
    """A fully checked Config from a parsed mapping (charnn.config.build, then the registries)."""
    return check_choices(config.build(raw, source, base, name, overrides, origin, values))
