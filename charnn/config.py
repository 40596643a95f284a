"""Experiment configuration: frozen dataclasses loaded from YAML, with dotted-key overrides.

Precedence: dataclass defaults < the YAML file < `--set section.key=value`. Every error
names the file and the dotted key, and unknown keys get a "did you mean" suggestion.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from charnn import spelling
from charnn.errors import CharnnError

DTYPES = ("float32", "float64")
DROPOUT_MODES = ("standard", "locked")
GATE_INITS = ("default", "chrono")
ENCODINGS = ("utf-8", "bytes")


@dataclass(frozen=True)
class DataConfig:
    path: str | None = None  # UTF-8 text file, relative to the config file
    text: str | None = None  # or the corpus inline
    url: str | None = None  # or a download, verified against sha256 and cached
    sha256: str | None = None
    val_fraction: float = 0.1  # held-out tail of the text, before the test tail
    test_fraction: float = 0.0  # held-out very end of the text
    encoding: str = "utf-8"  # utf-8: one symbol per character; bytes: 256 symbols, any file
    min_char_count: int = 0  # characters seen fewer times share one symbol; 0 = keep all


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "rnn"  # rnn (Elman) | lstm | gru | mlp (feed-forward over model.context characters)
    hidden_size: int = 128
    num_layers: int = 1
    dropout: float = 0.0  # on each layer's output (between layers and before the head), training only
    dropout_mode: str = "standard"  # standard: a mask per step | locked: one per stream for the whole chunk
    weight_drop: float = 0.0  # DropConnect on the recurrent matrix, one mask per chunk
    input_dropout: float = 0.0  # drop whole input characters (rows of the input matrix), one mask per chunk
    gate_init: str = "default"  # default | chrono: forget / update gate biases for memories up to chrono_max
    chrono_max: int = 100  # chrono: the longest lag, in characters, the gates should be ready to hold
    context: int = 0  # mlp: how many characters it sees (the next one is predicted from these alone)

    @property
    def window(self) -> int:
        """Characters layer 0 reads at once: the mlp's context, 1 for the recurrent cells."""
        return self.context or 1
    init: str = "uniform"  # normal | uniform | xavier | orthogonal
    init_scale: float = 0.08  # std for normal, bound for uniform
    dtype: str = "float32"  # float32 | float64


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 32  # B parallel streams
    seq_len: int = 64  # T steps of truncated backprop through time
    steps: int = 1000
    max_minutes: float = 0.0  # stop on wall-clock time as well; 0 = no limit
    optimizer: str = "adam"  # sgd | adagrad | rmsprop | adam | adamw
    lr: float = 2e-3
    momentum: float = 0.9  # sgd only
    nesterov: bool = False  # sgd only
    lr_schedule: str = "constant"  # constant | step | cosine
    warmup_steps: int = 0
    min_lr: float = 0.0  # cosine's final learning rate
    decay_rate: float = 0.5  # step schedule: lr *= decay_rate ...
    decay_every: int = 1000  # ... every decay_every steps
    weight_decay: float = 0.0  # on weight matrices; decoupled for adamw
    grad_clip: float = 5.0  # 0 = off
    clip_mode: str = "norm"  # norm (global L2) | value (element-wise)
    kernels: str = "auto"  # auto: the fast kernels where they run and pay (float32, Numba, 1000+ steps or minutes)


@dataclass(frozen=True)
class SampleConfig:
    length: int = 200  # characters to generate
    temperature: float = 1.0  # < 1 sharper, > 1 more random
    top_k: int = 0  # sample among the k likeliest characters; 0 = all
    top_p: float = 1.0  # then among the fewest likeliest holding this share of the probability; 1 = all


@dataclass(frozen=True)
class RunConfig:
    name: str = ""  # default: the config file's name without .yaml
    dir: str = "runs"  # runs are written to <dir>/<name>/
    seed: int = 0  # one seed makes the run bit-for-bit reproducible
    eval_every: int = 100  # steps between validation passes; 0 = only at the end
    eval_every_minutes: float = 0.0  # also evaluate every this many minutes of training; 0 = off
    eval_streams: int = 64  # validation scored in this many warmed-up pieces at once; 1 = exact, slow
    checkpoint_every: int = 100  # steps between writes of latest.npz; 0 = only at the end
    sample_every: int = 0  # steps between sample previews; 0 = none
    log_every: int = 10  # steps between metrics lines
    init_from: str | None = None  # start from this checkpoint's weights


@dataclass(frozen=True)
class Config:
    """A checked experiment config: five frozen sections (data, model, train, sample, run) whose
    fields are the YAML keys; charnn.load_config makes one, and every run saves it as config.yaml.

    Examples:
        >>> cfg = charnn.load_config("configs/hello.yaml")
        >>> cfg.model.hidden_size, cfg.train.seq_len, cfg.run.name
        (16, 4, 'hello')
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    run: RunConfig = field(default_factory=RunConfig)
    source: str = field(default="<defaults>", compare=False)  # where it was read from, for messages
    # dotted key -> where its value came from when not the source file (e.g. "--set train.lr=3e-3")
    origins: dict = field(default_factory=dict, compare=False)

    def where(self, key: str) -> str:
        """How an error message names a key: by the command-line override that set it, else by file."""
        return self.origins.get(key) or f"{self.source}: {key}"


_SECTION_TYPES = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "sample": SampleConfig,
    "run": RunConfig,
}


def suggest(word: str, choices) -> str:
    """" (did you mean 'x'?)" for the closest of `choices`, or nothing."""
    return spelling.suggest(word, choices)


def section_keys() -> dict[str, tuple[str, ...]]:
    """Section -> its keys, in declaration order."""
    return {name: tuple(f.name for f in dataclasses.fields(cls)) for name, cls in _SECTION_TYPES.items()}


def key_hint(section: str | None, key: str, dotted: bool = False) -> str:
    """What to say about an unknown key (charnn/spelling.py): the key it most likely means."""
    return spelling.key_hint(section_keys(), section, key, dotted)


def section_hint(name: str) -> str:
    """What to say about an unknown section: the section it means, or that it is a key of one."""
    return spelling.section_hint(section_keys(), name)


def _type_name(tp) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[tp]


def _coerce(value: Any, annotation: str, where: str) -> Any:
    """Check (and gently convert) one value against its field's annotation."""
    hints = {"int": int, "float": float, "str": str, "bool": bool, "str | None": (str, None)}
    tp = hints[annotation]
    if value is None and tp != (str, None):  # `lr:` in YAML, `--set train.lr=` on the command line
        raise CharnnError(f"{where}: the value is empty; give {_type_name(tp)}")
    if tp == (str, None):
        if value is None or isinstance(value, str):
            return value
        raise CharnnError(f"{where}: expected a string or null, got {value!r}")
    if tp is float:
        # YAML 1.1 reads 3e-3 as a string; accept it as the number it plainly is
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise CharnnError(f"{where}: must be a finite number, got {value!r}")
            return float(value)
    elif tp is int:
        if isinstance(value, str):  # YAML 1.1 reads 1e3 as a string; accept it when it is a whole number
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise CharnnError(f"{where}: expected {_type_name(tp)}, got {value!r}")


def _build_section(name: str, values: Any, source: str, origins: dict):
    cls = _SECTION_TYPES[name]
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise CharnnError(f"{source}: {name}: expected a mapping of keys, got {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        where = origins.get(f"{name}.{key}") or f"{source}: {name}.{key}"
        if key not in fields:
            raise CharnnError(f"{where}: unknown key{key_hint(name, str(key))}")
        kwargs[key] = _coerce(value, fields[key].type, where)
    return cls(**kwargs)


def check(ok: bool, cfg: Config, key: str, message: str) -> None:
    """Raise the one-line error "<where key came from>: message" unless ok."""
    if not ok:
        raise CharnnError(f"{cfg.where(key)}: {message}")


def one_of(value: str, choices, cfg: Config, key: str) -> None:
    check(value in choices, cfg, key, f"{value!r} is not one of {', '.join(choices)}{suggest(value, choices)}")


def validate(cfg: Config) -> None:
    """Range and consistency checks, section by section; each failure names the dotted key.

    The choices that name an implementation (model.cell, model.init, train.optimizer,
    train.lr_schedule, train.clip_mode, train.kernels) are the registries' to check: charnn/settings.py."""
    _validate_data(cfg, cfg.data)
    _validate_model(cfg, cfg.model)
    _validate_train(cfg, cfg.train)
    _validate_sample_and_run(cfg, cfg.sample, cfg.run)


def _validate_data(s: Config, d: DataConfig) -> None:
    given = [k for k in ("path", "text", "url") if getattr(d, k) is not None]
    check(len(given) == 1, s, "data", "give exactly one of data.path, data.text or data.url"
          + (f" (got {', '.join('data.' + k for k in given)})" if given else ""))
    check(d.url is None or d.sha256 is not None, s, "data.sha256", "a data.url needs its sha256 checksum")
    check(0 <= d.val_fraction < 1, s, "data.val_fraction", "must be in [0, 1)")
    check(0 <= d.test_fraction < 1, s, "data.test_fraction", "must be in [0, 1)")
    check(d.val_fraction + d.test_fraction < 1, s, "data.val_fraction",
          "val_fraction + test_fraction must leave some training text (< 1)")
    one_of(d.encoding, ENCODINGS, s, "data.encoding")
    check(d.min_char_count >= 0, s, "data.min_char_count", "must be >= 0 (0 = keep every character)")


def _validate_model(s: Config, m: ModelConfig) -> None:
    check(m.hidden_size >= 1, s, "model.hidden_size", "must be >= 1")
    check(m.num_layers >= 1, s, "model.num_layers", "must be >= 1")
    check(0 <= m.dropout < 1, s, "model.dropout", "must be in [0, 1)")
    one_of(m.dropout_mode, DROPOUT_MODES, s, "model.dropout_mode")
    check(0 <= m.weight_drop < 1, s, "model.weight_drop", "must be in [0, 1)")
    check(0 <= m.input_dropout < 1, s, "model.input_dropout", "must be in [0, 1)")
    one_of(m.gate_init, GATE_INITS, s, "model.gate_init")
    check(m.chrono_max >= 2, s, "model.chrono_max", "must be >= 2 (the longest lag to prepare for)")
    check(m.init_scale > 0, s, "model.init_scale", "must be > 0")
    one_of(m.dtype, DTYPES, s, "model.dtype")


def _validate_train(s: Config, t: TrainConfig) -> None:
    check(t.batch_size >= 1, s, "train.batch_size", "must be >= 1")
    check(t.seq_len >= 1, s, "train.seq_len", "must be >= 1")
    check(t.steps >= 1, s, "train.steps", "must be >= 1")
    check(t.max_minutes >= 0, s, "train.max_minutes", "must be >= 0 (0 = no limit)")
    check(t.lr > 0, s, "train.lr", "must be > 0")
    check(0 <= t.momentum < 1, s, "train.momentum", "must be in [0, 1)")
    check(t.warmup_steps >= 0, s, "train.warmup_steps", "must be >= 0")
    check(0 <= t.min_lr <= t.lr, s, "train.min_lr", "must be in [0, train.lr]")
    check(0 < t.decay_rate <= 1, s, "train.decay_rate", "must be in (0, 1]")
    check(t.decay_every >= 1, s, "train.decay_every", "must be >= 1")
    check(t.weight_decay >= 0, s, "train.weight_decay", "must be >= 0")
    check(t.grad_clip >= 0, s, "train.grad_clip", "must be >= 0 (0 = off)")


def _validate_sample_and_run(s: Config, smp: SampleConfig, r: RunConfig) -> None:
    check(smp.length >= 0, s, "sample.length", "must be >= 0")
    check(smp.temperature > 0, s, "sample.temperature", "must be > 0")
    check(smp.top_k >= 0, s, "sample.top_k", "must be >= 0 (0 = all characters)")
    check(0 < smp.top_p <= 1, s, "sample.top_p", "must be in (0, 1] (1 = all characters)")
    for key in ("eval_every", "checkpoint_every", "sample_every"):
        check(getattr(r, key) >= 0, s, f"run.{key}", "must be >= 0")
    check(r.log_every >= 1, s, "run.log_every", "must be >= 1")
    check(r.seed >= 0, s, "run.seed", "must be >= 0")
    check(r.eval_every_minutes >= 0, s, "run.eval_every_minutes", "must be >= 0 (0 = off)")
    check(r.eval_streams >= 1, s, "run.eval_streams", "must be >= 1 (1 = exact single stream)")
    check(r.name != "" and "/" not in r.name and r.name not in (".", ".."), s, "run.name",
          "must be a plain, non-empty folder name")


def parse(raw: Any, source: str = "<dict>", origins: dict | None = None) -> Config:
    """Build a Config from a parsed YAML mapping and validate it against the schema (the registries'
    choices are checked by charnn/settings.py, whose from_dict every caller uses)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise CharnnError(f"{source}: the config must be a mapping with sections "
                          f"{', '.join(_SECTION_TYPES)}, got {type(raw).__name__}")
    sections = {}
    for name, values in raw.items():
        if name not in _SECTION_TYPES:
            raise CharnnError(f"{source}: {name}: unknown section{section_hint(str(name))}")
        sections[name] = _build_section(name, values, source, origins or {})
    cfg = Config(**sections, source=source, origins=origins or {})
    validate(cfg)
    return cfg


def parse_override(item: str) -> tuple[list[str], Any]:
    """'train.lr=3e-3' -> (['train', 'lr'], '3e-3' parsed as YAML)."""
    key, sep, text = item.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 2 or not all(parts):
        if not sep and len(parts) == 2 and all(parts):
            raise CharnnError(f"--set {item!r}: expected section.key=value, with no space around '=': "
                              f"--set {key.strip()}=VALUE")
        if sep and len(parts) == 1 and parts[0]:
            hint = key_hint(None, parts[0])
            raise CharnnError(f"--set {item!r}: expected section.key=value{hint or ', e.g. --set train.lr=3e-3'}")
        raise CharnnError(f"--set {item!r}: expected section.key=value, e.g. --set train.lr=3e-3")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return parts, value


def read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CharnnError(f"config file {path} not found; check the path") from None
    except IsADirectoryError:
        raise CharnnError(f"config file {path} is a directory; give a .yaml file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CharnnError(f"cannot read config file {path}: {e}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CharnnError(f"{path}: malformed YAML{line}: {problem}") from None


def _absolute_data_path(raw: dict, base: Path) -> None:
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        data["path"] = os.path.normpath(base.absolute() / os.path.expanduser(data["path"]))


def read(path: str | Path, overrides: list[str] = (), origin: str = "--set {item}",
         values: dict | None = None) -> Config:
    """Read a YAML config, apply `values` and the `section.key=value` overrides, validate it against
    the schema, and fill run.name (charnn/settings.py's load_config also checks the registries' choices).

    Precedence: dataclass defaults < the file < values < overrides. `values` maps dotted keys to
    (value, how an error names it), for settings a command takes as its own flags (--data FILE).
    Errors in an override name it as `origin` says ({item}: the override, {key}: its dotted key).
    data.path in the file is relative to the file.
    """
    path = Path(path)
    return build(read_yaml(path), str(path), path.parent, path.stem, overrides, origin, values)


def build(raw: Any, source: str, base: Path, name: str, overrides: list[str] = (), origin: str = "--set {item}",
          values: dict | None = None) -> Config:
    """A Config from parsed YAML (or a dict) named `source`, as `read` makes one: data.path relative to
    `base`, then `values`, then the overrides; run.name defaults to `name`."""
    raw = {} if raw is None else raw
    origins: dict = {}
    if isinstance(raw, dict):
        raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
        _absolute_data_path(raw, base)
        for dotted, (value, said) in (values or {}).items():
            _override(raw, source, dotted.split("."), value, origins, said)
        for item in overrides:
            (section, key), value = parse_override(item)
            if section not in _SECTION_TYPES:
                raise CharnnError(f"--set {item!r}: unknown section {section!r}{section_hint(section)}")
            _override(raw, source, [section, key], value, origins, origin.format(item=item, key=f"{section}.{key}"))
        run = raw.setdefault("run", {})
        if run is None:
            run = raw["run"] = {}
        if isinstance(run, dict) and not run.get("name"):
            run["name"] = name
    return parse(raw, source=source, origins=origins if isinstance(raw, dict) else None)


def _override(raw: dict, source: str, parts: list[str], value, origins: dict, said: str) -> None:
    """Set raw[section][key] = value (from the command line), remembering how errors name it."""
    section, key = parts
    target = raw.setdefault(section, {})
    if target is None:
        target = raw[section] = {}
    if not isinstance(target, dict):
        raise CharnnError(f"{source}: {section}: expected a mapping of keys, got {target!r}")
    target[key] = value
    origins[f"{section}.{key}"] = said
    if section == "data" and key in ("path", "text", "url"):
        # naming a new source on the command line replaces the file's source
        for other in {"path", "text", "url"} - {key}:
            target.pop(other, None)
    if (section, key) == ("data", "path"):
        _absolute_data_path(raw, Path.cwd())


def preset_path(name: str) -> Path:
    """A config shipped inside the package (charnn/presets/NAME.yaml)."""
    return Path(__file__).resolve().parent / "presets" / f"{name}.yaml"


def to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (what goes into config.yaml and checkpoints)."""
    return {name: dataclasses.asdict(getattr(cfg, name)) for name in _SECTION_TYPES}


# what a resumed run must share with the run it continues: everything that shapes the model,
# the data it reads and how the text is cut into chunks; the rest (steps, rates, logging) may change
_FROZEN_ON_RESUME = {"data": None, "model": None, "train": ("batch_size", "seq_len", "optimizer")}
_MOVABLE_DATA_KEYS = ("path", "url", "sha256")  # the source may move: its characters are checked instead


def resume_conflict(saved: dict, given: dict) -> str | None:
    """The first key that differs between a run's saved config and the one resuming it, said in words."""
    for section, keys in _FROZEN_ON_RESUME.items():
        old, new = saved.get(section, {}), given.get(section, {})
        for key in keys or sorted(set(old) | set(new)):
            if section == "data" and key in _MOVABLE_DATA_KEYS:
                continue
            default = getattr(_SECTION_TYPES[section](), key, None)
            a, b = old.get(key, default), new.get(key, default)
            if a != b:
                return f"it was trained with {section}.{key}={a!r}, the config gives {b!r}"
    return None


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
