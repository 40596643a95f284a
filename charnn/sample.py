"""Generating text one character at a time from a trained model."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from charnn import model
from charnn.errors import CharnnError
from charnn.vocab import Vocab


def _step(params: model.Params, layers: list, char_id: int, h: list[np.ndarray]) -> np.ndarray:
    """Advance the Elman state by one character (in place) and return the next-character logits.

    layers: per layer (input table or matrix, W_hh, b_h, scratch); layer 0's table already
    holds W_xh + b_h, so a step is one row lookup, one matrix-vector product and a tanh.
    """
    x = None
    for layer, (W_in, W_hh, b_h, pre) in enumerate(layers):
        np.dot(h[layer], W_hh, out=pre)
        if layer == 0:
            pre += W_in[char_id]
        else:
            pre += x @ W_in
            pre += b_h
        np.tanh(pre, out=h[layer])
        x = h[layer]
    return x @ params["head.W_hy"] + params["head.b_y"]


def _gated_step(params: model.Params, layers: list, char_id: int, h: list[np.ndarray]) -> np.ndarray:
    """The same for LSTM and GRU layers, through the model's own one-step forward."""
    ids = np.array([[char_id]])
    state = [s[None, :] for s in h]
    _, last, cache = model.forward(params, ids, ids, state)
    for layer, s in enumerate(last):
        h[layer][:] = s[0]
    return np.log(cache.probs[0])  # log-probabilities serve as logits


def _choose(logits: np.ndarray, temperature: float, top_k: int, greedy: bool, rng: np.random.Generator) -> int:
    if greedy:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if 0 < top_k < len(z):
        kth = np.partition(z, -top_k)[-top_k]
        z[z < kth] = -np.inf
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(z) - 1))


def check_options(length: int, temperature: float, top_k: int, greedy: bool = False) -> None:
    """Sampling settings a user gives; greedy decoding ignores temperature and top-k."""
    if length < 0:
        raise CharnnError(f"length must be >= 0 (got {length})")
    if not greedy and not temperature > 0:
        raise CharnnError(f"temperature must be > 0 (got {temperature}); use --greedy for the likeliest text")
    if top_k < 0:
        raise CharnnError(f"top-k must be >= 0, 0 meaning all characters (got {top_k})")


def generate(
    params: model.Params,
    vocab: Vocab,
    prime: str,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
    rng: np.random.Generator,
) -> Iterator[str]:
    """Yield `length` new characters continuing `prime` (the prime itself is not yielded).

    The prime is fed through the model from a zero state; with an empty prime the first
    character is drawn uniformly from the vocabulary (and yielded as the first of `length`).
    """
    check_options(length, temperature, top_k, greedy)
    unknown = vocab.unknown_chars(prime)
    if unknown:
        raise CharnnError(
            f"seed text has characters outside the model's vocabulary: {', '.join(map(repr, unknown))}; "
            "use only characters from the training text"
        )
    return _generate(params, vocab, prime, length, temperature, top_k, greedy, rng)


def _generate(params, vocab, prime, length, temperature, top_k, greedy, rng) -> Iterator[str]:
    if model.cell_of(params) == "rnn":
        step = _step
        layers = [
            (params[f"rnn.{i}.W_xh"] + (params[f"rnn.{i}.b_h"] if i == 0 else 0), params[f"rnn.{i}.W_hh"],
             params[f"rnn.{i}.b_h"], np.empty_like(params[f"rnn.{i}.b_h"]))
            for i in range(model.num_layers_of(params))
        ]
    else:
        step, layers = _gated_step, []
    h = [s[0] for s in model.zero_state(params, 1)]
    if prime:
        ids = vocab.encode(prime)
    elif length > 0:
        ids = [int(rng.integers(vocab.size))]
        yield vocab.chars[ids[0]]
        length -= 1
    else:
        return
    for char_id in ids[:-1]:
        step(params, layers, int(char_id), h)
    current = int(ids[-1])
    for _ in range(length):
        logits = step(params, layers, current, h)
        current = _choose(logits, temperature, top_k, greedy, rng)
        yield vocab.chars[current]
