"""charnn.load_config: a config from a YAML file, a run directory or a dict, checked before anything runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Union

from charnn import config as schema
from charnn.config import Config
from charnn.errors import CharnnError, ParameterError
from charnn.settings import build, load_config as _load_file


# what every call that takes a config accepts: a Config, a YAML file, a run directory or a dict
ConfigSource = Union[Config, str, Path, Mapping]


def _values(overrides: Mapping[str, Any]) -> dict:
    """{"train.steps": 300} -> the values load_config applies, each named as the call named it."""
    values = {}
    for key, value in overrides.items():
        section, _, name = str(key).partition(".")
        if not name or "." in name:
            raise ParameterError("{overrides} keys are dotted config keys such as 'train.lr', got {key!r}", key=key)
        if section not in schema.section_keys():
            raise CharnnError(f"overrides[{key!r}]: unknown section {section!r}{schema.section_hint(section)}")
        values[key] = (value, f"overrides[{key!r}]")
    return values


def load_config(source: str | Path | Mapping | Config | None = None,
                overrides: Mapping[str, Any] | Iterable[str] | None = None, *,
                data: str | Path | None = None, minutes: float | None = None) -> Config:
    """A checked, typed config: from a YAML file, a run directory (its config.yaml), a dict, or
    with no source the built-in settings for training on the text file `data`.

    overrides: {"train.steps": 300, "model.hidden_size": 64} (Python values), or strings as the
    command line's --set takes them (["train.steps=300"]); checked exactly like the file.
    data: train on this text file (replaces data.path); minutes: the time budget
    (train.max_minutes). Every problem is a CharnnError naming the key.

    Examples:
        >>> cfg = charnn.load_config({"data": {"text": "hello"}, "run": {"name": "hi"}}, {"train.steps": 3})
        >>> cfg.train.steps, cfg.model.cell
        (3, 'rnn')
    """
    if minutes is not None and not minutes > 0:
        raise ParameterError("{minutes} must be > 0 (got {got})", got=minutes)
    strings = [] if overrides is None or isinstance(overrides, Mapping) else [str(item) for item in overrides]
    values = _values(overrides) if isinstance(overrides, Mapping) else {}
    if data is not None:
        _check_text_file(Path(data))
        values["data.path"] = (str(Path(data).absolute()), f"data={str(data)!r}")
    if minutes is not None:
        values["train.max_minutes"] = (minutes, f"minutes={minutes!r}")
    if isinstance(source, Config):
        source = schema.to_dict(source)
    if source is None:
        if data is None:
            raise ParameterError("give a {source} (a YAML file, a run directory or a dict) or a text file as {data}")
        from charnn import presets

        return presets.for_text(data, strings, values)
    if isinstance(source, Mapping):
        return build(dict(source), "<dict>", Path.cwd(), _default_name(source), strings, values=values)
    path = Path(source)
    if path.is_dir() and (path / "config.yaml").is_file():
        path = path / "config.yaml"
    return _load_file(path, strings, values=values)


def _check_text_file(path: Path) -> None:
    """The text file given as `data`, named as the caller gave it (training would name data.path)."""
    if path.is_dir():
        raise ParameterError("{path} is a directory; give a text file as {data}", path=path)
    if not path.exists():
        raise ParameterError("text file {path} not found; check the path given as {data}", path=path)


def looks_like_config(path: str | Path) -> bool:
    """Whether a file is a YAML config (by its name, or by its content: a mapping of charnn's sections)
    rather than, say, a text meant for training (load_config(data=...))."""
    from charnn.presets import looks_like_config as check

    return check(Path(path))


def _default_name(raw: Mapping) -> str:
    """A dict's run name when it gives none: its data file's stem, else "run"."""
    data = raw.get("data") if isinstance(raw.get("data"), Mapping) else {}
    path = data.get("path")
    return Path(path).stem if isinstance(path, str) and Path(path).stem else "run"
