"""Synthetic long-range tasks: structure, determinism and the oracle losses."""

import json
import math

import numpy as np
import pytest

from charnn.data import synth
from charnn.errors import CharnnError


@pytest.mark.parametrize("lag", [2, 7, 30])
def test_delay_repeats_each_marked_letter_exactly_lag_later(lag):
    s = synth.generate("delay", lag, 5000, seed=3)
    marks = [i for i, c in enumerate(s.text) if c == synth.MARK and i + 1 + lag < len(s.text)]
    assert len(marks) > 20
    assert all(s.text[i + 1 + lag] == s.text[i + 1] for i in marks)
    # between a mark and its repeat no other mark appears (one pending at a time)
    assert all(synth.MARK not in s.text[i + 1 : i + 2 + lag] for i in marks)


@pytest.mark.parametrize("lag", [2, 6, 25])
def test_brackets_match_and_close_within_lag(lag):
    s = synth.generate("brackets", lag, 5000, seed=4)
    stack, closes = [], 0
    for i, c in enumerate(s.text):
        if c in synth.OPENERS:
            stack.append((synth.OPENERS.index(c), i))
        elif c in synth.CLOSERS:
            kind, opened = stack.pop()
            assert kind == synth.CLOSERS.index(c) and i - opened <= lag
            closes += 1
    assert closes > 100


def test_same_seed_same_text():
    a, b = synth.generate("delay", 5, 2000, seed=1), synth.generate("delay", 5, 2000, seed=1)
    assert a.text == b.text and synth.generate("delay", 5, 2000, seed=2).text != a.text


def test_oracle_losses_differ_exactly_at_the_remembered_symbols():
    s = synth.generate("delay", 4, 3000, seed=5)
    gap = s.nomem - s.best
    repeats = sum(1 for i, c in enumerate(s.text) if c == synth.MARK and i + 5 < len(s.text))
    assert np.count_nonzero(gap) == repeats
    assert np.allclose(gap[gap > 0], math.log(len(synth.LETTERS)))
    b = synth.generate("brackets", 6, 3000, seed=5)
    closers = sum(c in synth.CLOSERS for c in b.text[1:])
    assert np.count_nonzero(b.nomem - b.best) == closers
    assert np.allclose((b.nomem - b.best)[b.nomem > b.best], math.log(4))


def test_oracle_is_a_proper_distribution_on_average():
    # the best oracle's loss equals the entropy rate the generator uses; a unigram model can't beat it
    s = synth.generate("delay", 3, 20000, seed=6)
    counts = np.unique(list(s.text[1:]), return_counts=True)[1]
    unigram = -np.sum(counts / counts.sum() * np.log(counts / counts.sum()))
    assert s.summary()["best_nats_per_char"] < s.summary()["nomem_nats_per_char"] < unigram


def test_fraction_learned():
    assert synth.fraction_learned(1.0, 1.0, 2.0) == 1.0
    assert synth.fraction_learned(2.0, 1.0, 2.0) == 0.0
    assert synth.fraction_learned(1.5, 1.0, 2.0) == 0.5


def test_write_puts_the_oracle_losses_beside_the_text(tmp_path):
    summary = synth.write(synth.generate("brackets", 5, 500, seed=0), tmp_path / "b.txt")
    assert json.loads((tmp_path / "b.txt.json").read_text()) == summary
    assert len((tmp_path / "b.txt").read_text()) == 500


@pytest.mark.parametrize("args, message, flag", [(("nope", 5, 100), "unknown task", "unknown task"),
                                                 (("delay", 1, 100), "^lag must", "--lag must"),
                                                 (("delay", 50, 60), "^length must", "--length must")])
def test_bad_arguments(args, message, flag, tmp_path, cli):
    with pytest.raises(CharnnError, match=message):  # the library names its parameters ...
        synth.generate(*args)
    task, lag, length = args
    code, _, err = cli("data", "synth", task, "--lag", lag, "--length", length, "-o", tmp_path / "t.txt")
    assert code == 1 and flag in err  # ... the command line its flags
