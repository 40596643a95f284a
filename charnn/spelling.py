"""Did-you-mean for config keys and choices: the names other tools use for charnn's keys, a key
written in the wrong section, and close spellings. Functions take the config's keys as data
(section -> its key names), so this module imports nothing of charnn.
"""

from __future__ import annotations

import difflib

def suggest(word: str, choices) -> str:
    """" (did you mean 'x'?)" for the closest of `choices`, or nothing."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# names other tools use for charnn's keys (textgenrnn, char-rnn, nanoGPT, Keras): a user's first guess
SYNONYMS = {
    "learning_rate": "train.lr", "learningrate": "train.lr", "lr_rate": "train.lr", "rate": "train.lr",
    "epochs": "train.steps", "num_epochs": "train.steps", "iterations": "train.steps", "iters": "train.steps",
    "max_iters": "train.steps", "max_steps": "train.steps", "num_steps": "train.steps",
    "batch": "train.batch_size", "batchsize": "train.batch_size",
    "seq_length": "train.seq_len", "sequence_length": "train.seq_len", "block_size": "train.seq_len",
    "bptt": "train.seq_len", "unroll": "train.seq_len",
    "clip": "train.grad_clip", "grad_norm": "train.grad_clip", "max_grad_norm": "train.grad_clip",
    "wd": "train.weight_decay", "warmup": "train.warmup_steps", "schedule": "train.lr_schedule",
    "scheduler": "train.lr_schedule", "optim": "train.optimizer", "minutes": "train.max_minutes",
    "time_limit": "train.max_minutes",
    "layers": "model.num_layers", "n_layers": "model.num_layers", "num_layer": "model.num_layers",
    "n_layer": "model.num_layers", "depth": "model.num_layers",
    "hidden": "model.hidden_size", "hidden_dim": "model.hidden_size", "hidden_units": "model.hidden_size",
    "rnn_size": "model.hidden_size", "n_embd": "model.hidden_size", "units": "model.hidden_size",
    "size": "model.hidden_size", "cell_type": "model.cell", "rnn_type": "model.cell", "type": "model.cell",
    "model": "model.cell", "window": "model.context",
    "file": "data.path", "input": "data.path", "input_file": "data.path", "text_file": "data.path",
    "data_dir": "data.path", "val_split": "data.val_fraction", "validation_split": "data.val_fraction",
    "random_seed": "run.seed", "out_dir": "run.dir", "output_dir": "run.dir", "save_every": "run.checkpoint_every",
    "eval_interval": "run.eval_every", "log_interval": "run.log_every",
    "temp": "sample.temperature", "num_chars": "sample.length", "max_length": "sample.length",
}
SECTION_SYNONYMS = {"training": "train", "trainer": "train", "optimizer": "train", "dataset": "data",
                    "corpus": "data", "optimiser": "train", "network": "model", "sampling": "sample", "generate": "sample",
                    "generation": "sample", "logging": "run", "experiment": "run"}


def key_hint(keys: dict[str, tuple[str, ...]], section: str | None, key: str, dotted: bool = False) -> str:
    """What to say about an unknown key: the key it most likely means, dotted when it lives in
    another section ("; it belongs in run: run.eval_every"), or nothing.

    Order: the key in another section by its exact name, a known synonym, then the closest
    spelling among the section's keys (or among all dotted keys when there is no section).
    `dotted`: name suggestions in the same section dotted too (where keys are written dotted).
    """
    word = str(key).strip().lower().replace("-", "_")
    owners = [s for s, names in keys.items() if word in names and s != section]
    said = (lambda name: f"{section}.{name}") if dotted else (lambda name: name)
    if section is not None and word in keys.get(section, ()):
        return f" (did you mean {said(word)!r}?)"  # only its spelling differed (case, dashes)
    if owners:
        return f"; {word} is a key of the {owners[0]} section: {owners[0]}.{word}"
    synonym = SYNONYMS.get(word)
    if synonym is not None:
        owner, name = synonym.split(".")
        return f" (did you mean {said(name)!r}?)" if owner == section else f" (did you mean {synonym!r}?)"
    if section in keys:
        close = difflib.get_close_matches(word, keys[section], n=1)
        return f" (did you mean {said(close[0])!r}?)" if close else ""
    return suggest(word, [f"{s}.{k}" for s, names in keys.items() for k in names])


def section_hint(keys: dict[str, tuple[str, ...]], name: str) -> str:
    """What to say about an unknown section: the section it means, or that it is a key of one."""
    word = str(name).strip().lower()
    if word in SECTION_SYNONYMS:
        return f" (did you mean {SECTION_SYNONYMS[word]!r}?)"
    close = suggest(word, keys)
    if close:
        return close
    owners = [s for s, names in keys.items() if word in names]
    if owners:
        return f"; {word} is a key of the {owners[0]} section: write it under {owners[0]}:"
    dotted = SYNONYMS.get(word)
    return f"; did you mean the key {dotted}?" if dotted else ""
