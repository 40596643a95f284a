"""A model as a folder ready for `huggingface-cli upload`: model.safetensors, config.json,
README.md (a model card with YAML front matter) and web.html. charnn reads the folder back
(`charnn sample --checkpoint FOLDER`) through its model.safetensors.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from charnn import __version__
from charnn.config import to_dict
from charnn.formats import output, safetensors_file, web
from charnn.training.checkpoint import Checkpoint


@dataclass
class Card:
    """What the model card reports beyond the checkpoint: scores and samples, measured by the caller."""

    test_bits_per_char: float | None = None
    test_chars: int | None = None
    samples: list[str] = field(default_factory=list)
    sample_temperature: float = 1.0


def data_name(ckpt: Checkpoint) -> str:
    """The training text's name: its file's or download's name, or "inline text"."""
    d = ckpt.config.data
    if d.path:
        return Path(d.path).name
    if d.url:
        return d.url.rstrip("/").rsplit("/", 1)[-1] or d.url
    return "inline text"


def write(path: Path, ckpt: Checkpoint, dtype: str, card: Card, force: bool) -> None:
    """The folder at `path`, complete or not at all."""
    output.check_target(path, folder=True, force=force)

    def fill(folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(safetensors_file.encode(ckpt, dtype))
        (folder / "config.json").write_text(json.dumps(config_json(ckpt), indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
        (folder / "README.md").write_text(model_card(ckpt, card, folder_name=path.name), encoding="utf-8")
        (folder / "web.html").write_text(web.page(ckpt, "float16"), encoding="utf-8")

    output.write_folder(path, fill)


def config_json(ckpt: Checkpoint) -> dict:
    """config.json: what the model is, for people and tools that do not run charnn."""
    m = ckpt.config.model
    return {"library": output.HF_MARKER, "charnn_version": __version__, "cell": m.cell, "num_layers": m.num_layers,
            "hidden_size": m.hidden_size, "vocab_size": len(ckpt.vocab_chars), "encoding": ckpt.config.data.encoding,
            "vocab": ckpt.vocab_chars, "config": to_dict(ckpt.config)}


def model_card(ckpt: Checkpoint, card: Card, folder_name: str) -> str:
    """README.md: YAML front matter (library_name, tags, training data, scores), then the card."""
    samples = "\n\n".join(_fenced(s) for s in card.samples) or "(none)"
    sections = {"model": to_dict(ckpt.config)["model"], "train": to_dict(ckpt.config)["train"]}
    return f"""---
{yaml.safe_dump(_front_matter(ckpt, card), sort_keys=False, allow_unicode=True).strip()}
---

# {web.model_name(ckpt)}

A character-level language model trained with charnn on {data_name(ckpt)}:
{web.facts(ckpt)}.

{_scores(ckpt, card)}

## Samples

Three samples of 200 characters at temperature {card.sample_temperature:g}, each starting as the training text does:

{samples}

{_usage(ckpt, folder_name)}

## Training

```yaml
{yaml.safe_dump(sections, sort_keys=False).strip()}
```
"""


def _front_matter(ckpt: Checkpoint, card: Card) -> dict:
    val = web.bits_per_char(ckpt.meta.get("val_loss"))
    front = {"library_name": "charnn", "pipeline_tag": "text-generation",
             "tags": ["charnn", "character-level", "text-generation", ckpt.cell, "numpy"],
             "training_data": data_name(ckpt)}
    if val is not None:
        front["validation_bits_per_char"] = round(val, 4)
    if card.test_bits_per_char is not None:
        front["test_bits_per_char"] = round(card.test_bits_per_char, 4)
    return front


def _scores(ckpt: Checkpoint, card: Card) -> str:
    val = web.bits_per_char(ckpt.meta.get("val_loss"))
    rows = [f"| validation | {val:.4f} |" if val is not None else "| validation | not scored |",
            f"| test ({card.test_chars:,} characters) | {card.test_bits_per_char:.4f} |"
            if card.test_bits_per_char is not None else "| test | not scored (no test split, or the text was not at hand) |"]
    return "## Scores\n\nBits per character (lower is better):\n\n| split | bits/char |\n|---|---|\n" + "\n".join(rows)


def _usage(ckpt: Checkpoint, folder: str) -> str:
    m, module = ckpt.config.model, _torch_module(ckpt.cell)
    return f"""## Use it

With charnn (`pip install charnn`), from the folder that holds `{folder}`:

```sh
charnn sample --checkpoint {folder} --seed "The " --length 300
charnn eval some.txt --checkpoint {folder}
```

```python
import charnn
model = charnn.load("{folder}")
print(model.sample(seed="The ", length=300))
```

With PyTorch: the weights carry torch's names, so `torch.nn.{module}` and a linear head load them:

```python
import json, torch
from safetensors.torch import load_file
from safetensors import safe_open

weights = load_file("{folder}/model.safetensors")
with safe_open("{folder}/model.safetensors", "pt") as f:
    vocab = json.loads(f.metadata()["vocab"])
V, H, L = len(vocab), {m.hidden_size}, {m.num_layers}
rnn = torch.nn.{module}(V, H, L, batch_first=True)
head = torch.nn.Linear(H, V)
torch.nn.ModuleDict({{"rnn": rnn, "head": head}}).load_state_dict(weights, strict=True)
# the input is one-hot: x = torch.nn.functional.one_hot(ids, V).float(); logits = head(rnn(x)[0])
```

In a browser: open `web.html` (no server, no network): it samples in the page.

## Upload

`huggingface-cli upload YOUR_NAME/{folder} {folder}` (after `huggingface-cli login`)."""


def _fenced(text: str) -> str:
    """A code block that the text cannot close: its fence is longer than any run of backticks in it."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", text)), default=0))
    return f"{fence}text\n{text}\n{fence}"


def _torch_module(cell: str) -> str:
    return {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
