"""The sweep file: a base config, a search space over dotted config keys, and a budget.

    base: configs/shakespeare.yaml         # relative to the sweep file
    space:
      train.lr: {low: 1e-4, high: 1e-2, log: true}
      model.hidden_size: {choices: [256, 384, 512]}
    trials: 40                              # finished trials the study should reach
    trial: {max_minutes: 1}                 # overrides of every trial (train.* by bare name, or dotted)
    objective: val_loss                     # minimised
    pruner: median                          # median | hyperband | none
    sampler: tpe                            # tpe | random | grid

Every problem is a one-line CharnnError naming the key, raised before any trial starts.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from charnn.config import Config, key_hint, read_yaml, suggest
from charnn.settings import load_config
from charnn.errors import CharnnError

SWEEP_KEYS = ("name", "base", "space", "trials", "trial", "objective", "pruner", "sampler")
PARAM_KEYS = ("low", "high", "log", "step", "choices")
OBJECTIVES = ("val_loss",)
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random", "grid")
JOURNAL_NAME = "optuna-journal.log"


@dataclass(frozen=True)
class Param:
    """One dimension of the search space: a numeric range (int or float) or a list of choices."""

    key: str  # dotted config key, e.g. train.lr
    kind: str  # "int", "float" or "choice"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple = ()

    def suggest(self, trial):
        if self.kind == "choice":
            return trial.suggest_categorical(self.key, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.key, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)


@dataclass(frozen=True)
class Sweep:
    path: Path  # the sweep file
    name: str  # the study's name and the folder of its trials
    base: Path  # the base config
    space: dict  # dotted key -> Param
    trials: int  # finished (complete or pruned) trials the study should reach
    trial: dict  # dotted keys applied to every trial, e.g. {"train.max_minutes": 1}
    objective: str
    pruner: str
    sampler: str
    storage: str  # a journal file path, or an Optuna RDB URL
    runs_dir: str  # the base config's run.dir

    @property
    def folder(self) -> Path:
        return Path(self.runs_dir) / self.name

    @property
    def best_path(self) -> Path:
        return self.folder / "best.yaml"


def config_keys() -> dict[str, str]:
    """Every dotted config key with its annotation ('int', 'float', 'str', 'bool', 'str | None')."""
    defaults = Config()
    keys = {}
    for section in dataclasses.fields(Config):
        value = getattr(defaults, section.name)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):  # strings under `from __future__ import annotations`
                keys[f"{section.name}.{f.name}"] = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    return keys


def _dotted_hint(key: str) -> str:
    """The did-you-mean of a dotted key: by its section's keys (and synonyms), else by all of them."""
    section, _, name = key.partition(".")
    return key_hint(section if section in {k.split(".")[0] for k in config_keys()} else None, name or section,
                    dotted=True)


def _number(value, kind: str, where: str):
    if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CharnnError(f"{where}: expected a number, got {value!r}")
    if kind == "int":
        if float(value) != int(value):
            raise CharnnError(f"{where}: expected an integer, got {value!r}")
        return int(value)
    return float(value)


def _choices(key: str, spec: dict, at: str) -> Param:
    if set(spec) != {"choices"}:
        raise CharnnError(f"{at}: give either choices or low/high, not both")
    choices = spec["choices"]
    if not isinstance(choices, list) or not choices:
        raise CharnnError(f"{at}.choices: must be a non-empty list, got {choices!r}")
    if any(isinstance(c, (list, dict)) for c in choices):
        raise CharnnError(f"{at}.choices: each choice must be a number, string, boolean or null")
    return Param(key, "choice", choices=tuple(choices))


def _param(key: str, spec, annotation: str, at: str) -> Param:
    """Check one space entry: {low, high[, log | step]} for numeric keys, or {choices: [...]}."""
    if not isinstance(spec, dict):
        raise CharnnError(f"{at}: expected {{low: ..., high: ...}} or {{choices: [...]}}, got {spec!r}")
    for name in spec:
        if name not in PARAM_KEYS:
            raise CharnnError(f"{at}.{name}: unknown key{suggest(str(name), PARAM_KEYS)}; use {', '.join(PARAM_KEYS)}")
    if "choices" in spec:
        return _choices(key, spec, at)
    if annotation not in ("int", "float"):
        raise CharnnError(f"{at}: {key} is not numeric; give its values as choices: [...]")
    if "low" not in spec or "high" not in spec:
        raise CharnnError(f"{at}: give low and high (or choices: [...])")
    low, high = _number(spec["low"], annotation, f"{at}.low"), _number(spec["high"], annotation, f"{at}.high")
    if low > high:
        raise CharnnError(f"{at}: low ({low:g}) is greater than high ({high:g})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise CharnnError(f"{at}.log: expected true or false, got {log!r}")
    step = _number(spec["step"], annotation, f"{at}.step") if "step" in spec else None
    if step is not None and (step <= 0 or log):
        raise CharnnError(f"{at}.step: must be > 0, and cannot be combined with log: true")
    if log and low <= 0:
        raise CharnnError(f"{at}: log: true needs low > 0 (got {low:g})")
    return Param(key, annotation, low, high, log, step)


def _space(raw, where: str) -> dict:
    if not isinstance(raw, dict) or not raw:
        raise CharnnError(f"{where}: space: give at least one config key to search, e.g. train.lr: {{low: 1e-4, high: 1e-2, log: true}}")
    keys = config_keys()
    space = {}
    for key, spec in raw.items():
        at = f"{where}: space.{key}"
        if key not in keys:
            raise CharnnError(f"{at}: not a config key{_dotted_hint(str(key))}")
        if key in ("run.name", "run.dir"):
            raise CharnnError(f"{at}: set by the sweep (each trial runs in <run.dir>/<sweep>/trial-<n>)")
        space[key] = _param(key, spec, keys[key], at)
    return space


def _one_of(raw: dict, key: str, choices, where: str) -> str:
    value = raw.get(key, choices[0])
    if value not in choices:
        raise CharnnError(f"{where}: {key}: {value!r} is not one of {', '.join(choices)}{suggest(str(value), choices)}")
    return value


def _trial_keys(raw, space: dict, where: str) -> dict:
    """The fixed overrides of every trial: budget keys by bare name (max_minutes: train.max_minutes)
    and any other config key dotted (run.eval_every_minutes)."""
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise CharnnError(f"{where}: trial: expected a mapping of train.* keys, e.g. {{max_minutes: 1}}, got {raw!r}")
    keys = config_keys()
    fixed = {}
    for key, value in raw.items():
        dotted = key if "." in str(key) else f"train.{key}"
        if dotted not in keys:
            hint = _dotted_hint(str(key)) if "." in str(key) else key_hint("train", str(key))
            raise CharnnError(f"{where}: trial.{key}: not a {'config' if '.' in str(key) else 'train.*'} key{hint}")
        if dotted in ("run.name", "run.dir"):
            raise CharnnError(f"{where}: trial.{key}: set by the sweep (each trial runs in <run.dir>/<sweep>/trial-<n>)")
        if dotted in space:
            raise CharnnError(f"{where}: trial.{key}: also in space; give it in one place")
        fixed[dotted] = value
    return fixed


def _base(raw: dict, path: Path) -> Path:
    base = raw.get("base")
    if not isinstance(base, str) or not base:
        raise CharnnError(f"{path}: base: give the config to start from, e.g. base: shakespeare.yaml")
    base_path = path.parent / os.path.expanduser(base)  # relative to the sweep file, like data.path
    if not base_path.is_file():
        raise CharnnError(f"{path}: base: {base_path} does not exist; the path is relative to the sweep file")
    return base_path


def _trials(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CharnnError(f"{where}: trials: expected an integer >= 1, got {value!r}")
    return value


def load_sweep(path: str | Path, storage: str | None = None, trials: int | None = None) -> Sweep:
    """Read and check a sweep file; `storage` and `trials` override its defaults."""
    path = Path(path)
    if not path.is_file():
        raise CharnnError(f"sweep file {path} not found; check the path")
    raw = read_yaml(path)
    where = str(path)
    if not isinstance(raw, dict):
        raise CharnnError(f"{where}: a sweep file is a mapping with keys {', '.join(SWEEP_KEYS)}")
    for key in raw:
        if key not in SWEEP_KEYS:
            raise CharnnError(f"{where}: {key}: unknown key{suggest(str(key), SWEEP_KEYS)}")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise CharnnError(f"{where}: name: must be a plain, non-empty folder name, got {name!r}")
    base = _base(raw, path)
    space = _space(raw.get("space"), where)
    trial = _trial_keys(raw.get("trial"), space, where)
    # the base config, with the trial budget, must be valid before any trial starts
    base_cfg = load_config(base, [f"{k}={json.dumps(v)}" for k, v in trial.items()], origin=f"{where}: trial: {{key}}")
    sampler = _one_of(raw, "sampler", SAMPLERS, where)
    if sampler == "grid":
        ranges = [k for k, p in space.items() if p.kind != "choice"]
        if ranges:
            raise CharnnError(f"{where}: space.{ranges[0]}: the grid sampler needs choices: [...] for every key")
    runs_dir = base_cfg.run.dir
    return Sweep(
        path=path, name=name, base=base, space=space,
        trials=_trials(raw.get("trials", 20) if trials is None else trials, where), trial=trial,
        objective=_one_of(raw, "objective", OBJECTIVES, where), pruner=_one_of(raw, "pruner", PRUNERS, where),
        sampler=sampler, storage=storage or str(Path(runs_dir) / name / JOURNAL_NAME), runs_dir=runs_dir,
    )
