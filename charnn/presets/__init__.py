"""Configs shipped inside the package: `text.yaml`, what `charnn train --data FILE` trains.

The preset is the best setting found for Tiny Shakespeare (1.1M characters) in 5 minutes;
`fit_to_text` adapts it to the file's length: a smaller, regularised network and more
frequent evaluation for shorter texts (`size_settings`), and a smaller batch and window for a
text shorter than one batch.
"""

from __future__ import annotations

from pathlib import Path

from charnn.config import Config, preset_path, read_yaml
from charnn.settings import load_config

SMALL_FILE_BYTES = 1 << 20  # larger files fit the preset's batch whatever their encoding


def _char_count(path: Path, encoding: str = "utf-8") -> int | None:
    """Symbols in the file as training reads them: its bytes in bytes mode, else the characters of a
    small UTF-8 file; None for a large, unreadable or non-UTF-8 one (training then reads it and
    reports any problem itself)."""
    try:
        size = path.stat().st_size
        if encoding == "bytes":  # each byte is a symbol
            return size
        if size > SMALL_FILE_BYTES:
            return None
        return len(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError):
        return None


# by the text's length in characters: measured on slices of Tiny Shakespeare and of Python's standard
# library (4K to 300K characters), each setting within 0.006 nats/char of the best found for its size
SMALL, MEDIUM, LARGE = 15_000, 50_000, 200_000


def size_settings(chars: int, val_fraction: float, seq_len: int) -> dict:
    """Dotted key -> value of the preset's size rule for a text of `chars` characters.

    Below 15K characters the 3 x 256 network overfits within a few steps whatever the dropout,
    so a small one (1 x 64, dropout 0.5) trains on 8 streams (32 would see the same few chunks
    every step) for 100 epochs; up to 50K the preset's network takes dropout 0.5, up to 200K
    dropout 0.3; from 200K on it is the Tiny Shakespeare setting unchanged. Below 200K it is also
    evaluated every half epoch (at least every 5 steps), to keep the best point before overfitting.
    """
    n_train = chars - int(chars * val_fraction)
    if chars >= LARGE:
        return {}
    batch = 8 if chars < SMALL else 32
    epoch = max(1, ((n_train - 1) // batch) // seq_len)  # steps per epoch
    settings = {"run.eval_every": max(5, epoch // 2)}
    if chars < SMALL:
        steps = 100 * epoch
        settings.update({"model.hidden_size": 64, "model.num_layers": 1, "model.dropout": 0.5,
                         "train.batch_size": batch, "train.steps": steps, "train.warmup_steps": min(100, steps // 5)})
    else:
        settings["model.dropout"] = 0.5 if chars < MEDIUM else 0.3
    return settings


def fit_to_text(chars: int | None, batch_size: int, seq_len: int, val_fraction: float) -> dict:
    """Dotted key -> value for what must change for a text of `chars` characters: the size rule,
    then whatever must shrink so it can train at all (a batch needs batch_size x seq_len + 1
    training characters; a text too short to spare 2 characters gets no validation split)."""
    if chars is None:
        return {}
    fitted = {}
    if chars * val_fraction < 2:
        fitted["data.val_fraction"] = val_fraction = 0.0
    fitted.update(size_settings(chars, val_fraction, seq_len))
    batch_size = fitted.get("train.batch_size", batch_size)
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
    given = {"data.path": (str(data.absolute()), said), "run.name": (data.stem or "text", said)}
    # the encoding the overrides choose decides what a symbol is, so what is counted
    encoding = load_config(preset, overrides, values={**given, **(values or {})}).data.encoding
    fitted = fit_to_text(_char_count(data, encoding), raw["train"]["batch_size"], raw["train"]["seq_len"],
                         raw["data"]["val_fraction"])
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
