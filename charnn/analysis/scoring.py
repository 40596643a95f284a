"""What `charnn eval` scores: a text file or a split of the checkpoint's own corpus, statically
(the exact definition, charnn/evaluate.py) and, if asked, with dynamic evaluation (charnn/dynamic.py)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from charnn.training import checkpoint
from charnn.data.corpus import checkpoint_split
from charnn.analysis.dynamic import DynamicSettings, dynamic_loss, gradient_scales
from charnn.errors import CharnnError, ParameterError
from charnn.nn.evaluate import LN2, evaluate_ids
from charnn.data.prepare import encode_file


def _dynamic(ckpt: checkpoint.Checkpoint, ids, settings: DynamicSettings) -> dict:
    try:  # the very text it was trained on (checked, as for --split), never the scored one
        train_ids = checkpoint_split(ckpt.config, ckpt.vocab.chars, ckpt.meta.get("corpus_sha256"), "train")
    except CharnnError as e:
        raise ParameterError("{dynamic} needs the model's training text for its gradient scales: {why}", why=e) from None
    ms = gradient_scales(ckpt.params, ckpt.cell, train_ids, settings.segment_len)
    nats = dynamic_loss(ckpt.params, ckpt.cell, ids, ms, settings)
    return {"dynamic_nats_per_char": nats, "dynamic_bits_per_char": nats / LN2}


def _encode_text(ckpt: checkpoint.Checkpoint, text: str, note):
    """Ids of an in-memory text: characters the model never saw map to its rare-character symbol if it
    has one (and `note` is told how many), else they are an error naming them."""
    mapped, count = ckpt.vocab.map_rare(text)
    note(count, "the text")
    unknown = ckpt.vocab.unknown_chars(mapped)
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise CharnnError(f"the text has {len(unknown)} character{'s' if len(unknown) != 1 else ''} outside the "
                          f"model's vocabulary: {shown} "
                          f"(the model is {ckpt.name}, {ckpt.vocab.describe()})")
    return ckpt.vocab.encode(mapped)


def score(ckpt: checkpoint.Checkpoint, *, text: str | None = None, text_file: str | Path | None = None,
          split: str | None = None, streams: int = 1, dynamic: DynamicSettings | None = None,
          note: Callable[[int, str], None] = lambda count, name: None) -> tuple[dict, str]:
    """(the eval keys, what was scored): nats_per_char, bits_per_char, perplexity, chars, and with
    `dynamic` also dynamic_nats_per_char and dynamic_bits_per_char. One of: `text` (in memory, in
    the model's symbols), `text_file` (encoded block by block, any size) or a `split` of its corpus."""
    if sum(x is not None for x in (text, text_file, split)) != 1:
        if text is None:
            raise ParameterError("give {text_file} to score or {split}, not both and not neither")
        raise ParameterError("give one of {text}, {text_file} or {split} to score")
    vocab = ckpt.vocab
    with tempfile.TemporaryDirectory(prefix="charnn-eval-") as folder:
        if split is not None:
            ids = checkpoint_split(ckpt.config, vocab.chars, ckpt.meta.get("corpus_sha256"), split)
            name = f"the {split} split"
        elif text is not None:
            ids, name = _encode_text(ckpt, text, note), "the text"
        else:
            encoded = encode_file(text_file, vocab, ckpt.config.data.encoding, folder, ckpt.name)
            note(encoded.replaced, str(text_file))
            ids, name = encoded.ids, str(text_file)
        if dynamic is not None:
            dynamic.check()  # before the static pass: a bad option should not cost its time
        result = evaluate_ids(ckpt.params, ids, cell=ckpt.cell, streams=streams).as_dict()
        if dynamic is not None:
            result.update(_dynamic(ckpt, ids, dynamic))
    return result, name
