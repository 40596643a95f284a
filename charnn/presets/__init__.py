"""Configs shipped inside the package: `text.yaml`, what `charnn train --data FILE` trains.

The preset's batch and window are sized for a text of 100 KB or more; `fit_to_text` shrinks
them for a shorter file (a batch needs batch_size x seq_len + 1 training characters) and
drops the validation split of a text too short to spare 2 characters for it.
"""

from __future__ import annotations

from pathlib import Path

from charnn.config import Config, preset_path, read_yaml
from charnn.settings import load_config

SMALL_FILE_BYTES = 1 << 20  # larger files fit the preset's batch whatever their encoding


def _char_count(path: Path) -> int | None:
    """Characters in a small UTF-8 file; None for a large, unreadable or non-UTF-8 one
    (training then reads it and reports any problem itself)."""
    try:
        if path.stat().st_size > SMALL_FILE_BYTES:
            return None
        return len(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


def fit_to_text(chars: int | None, batch_size: int, seq_len: int, val_fraction: float) -> dict:
    """Dotted key -> value for what must shrink so a text of `chars` characters can train."""
    if chars is None:
        return {}
    fitted = {}
    if chars * val_fraction < 2:
        fitted["data.val_fraction"] = val_fraction = 0.0
    n_train = int(chars * (1 - val_fraction))
    if n_train - 1 >= batch_size * seq_len:
        return fitted
    seq_len = max(1, min(seq_len, n_train - 1))
    fitted["train.seq_len"] = seq_len
    fitted["train.batch_size"] = max(1, min(batch_size, (n_train - 1) // seq_len))
    return fitted


def for_text(data: str | Path, overrides: list[str] = (), values: dict | None = None) -> Config:
    """The `text` preset trained on the file `data`, in runs/<its stem>/; `values` and `overrides` as
    load_config takes them (e.g. {"train.max_minutes": (10, "--minutes 10")})."""
    data = Path(data)
    preset = preset_path("text")
    raw = read_yaml(preset)
    said = f"--data {data}"
    fitted = fit_to_text(_char_count(data), raw["train"]["batch_size"], raw["train"]["seq_len"],
                         raw["data"]["val_fraction"])
    given = {"data.path": (str(data.absolute()), said), "run.name": (data.stem or "text", said)}
    given.update({k: (v, f"{said} (fitted to its length)") for k, v in fitted.items()})
    return load_config(preset, overrides, values={**given, **(values or {})})


def looks_like_config(path: Path) -> bool:
    """A YAML file by its name, or by its content: a mapping of charnn's sections."""
    if path.suffix.lower() in (".yaml", ".yml"):
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
        import yaml

        raw = yaml.safe_load(head.decode("utf-8"))
    except Exception:  # noqa: BLE001  anything that is not YAML text is not a config
        return False
    from charnn.config import section_keys

    return isinstance(raw, dict) and bool(raw) and set(map(str, raw)) <= set(section_keys())
