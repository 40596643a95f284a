"""Sampling: the one-character step agrees with the model's forward; temperature and top-k behave."""

import json

import numpy as np
import pytest

from charnn.nn import model
from charnn.nn import sampling as sample
from charnn.errors import CharnnError
from charnn.data.vocab import Vocab
from conftest import CELLS, window


@pytest.mark.parametrize("cell", CELLS)
def test_generated_text_is_what_the_model_predicts(cell):
    rng = np.random.default_rng(0)
    vocab = Vocab(tuple("abcdef"))
    params = model.init_params(6, 8, 2, init="normal", scale=0.8, rng=rng, dtype=np.float64, cell=cell,
                               context=window(cell))
    for p in params.values():
        if p.ndim == 1:
            p += rng.normal(0, 0.5, p.shape)
    text = "ab" + "".join(sample.generate(params, cell, vocab, "ab", 12, greedy=True, rng=rng))
    ids = vocab.encode(text)
    _, _, cache = model.forward(params, ids[None, :-1], ids[None, 1:], model.zero_state(params, 1, cell), cell=cell)
    # each greedy character is the argmax of the model's prediction at that position
    assert np.array_equal(cache.probs.argmax(axis=1)[1:], ids[2:])


def test_top_k_one_is_greedy_and_temperature_sharpens():
    rng = np.random.default_rng(1)
    logits = np.array([1.0, 2.0, 0.5, 1.5])
    assert all(sample.choose(logits, 1.0, 1, False, rng) == 1 for _ in range(50))
    draws = lambda temp: np.bincount([sample.choose(logits, temp, 0, False, rng) for _ in range(4000)], minlength=4)
    p = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(draws(1.0) / 4000, p, atol=0.03)
    assert draws(0.2)[1] > 3600  # a low temperature nearly always takes the likeliest
    top2 = {sample.choose(logits, 1.0, 2, False, rng) for _ in range(500)}
    assert top2 == {1, 3}  # only the two likeliest characters


def test_bad_options_and_unknown_seed_characters():
    params = model.init_params(3, 4, 1, rng=np.random.default_rng(0))
    vocab = Vocab(("a", "b", "c"))
    with pytest.raises(CharnnError, match="'z'"):
        sample.generate(params, "rnn", vocab, "az", 5, rng=np.random.default_rng(0))
    with pytest.raises(CharnnError, match="temperature"):
        sample.generate(params, "rnn", vocab, "a", 5, temperature=0, rng=np.random.default_rng(0))
    assert "".join(sample.generate(params, "rnn", vocab, "a", 0, rng=np.random.default_rng(0))) == ""
    assert len("".join(sample.generate(params, "rnn", vocab, "", 7, rng=np.random.default_rng(0)))) == 7


def test_top_p_keeps_the_fewest_likeliest_characters_that_hold_that_mass():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    assert {sample.choose(logits, 1.0, 0, False, rng, top_p=0.45) for _ in range(200)} == {0}
    assert {sample.choose(logits, 1.0, 0, False, rng, top_p=0.7) for _ in range(500)} == {0, 1}
    assert {sample.choose(logits, 1.0, 0, False, rng, top_p=0.81) for _ in range(800)} == {0, 1, 2}
    draws = np.bincount([sample.choose(logits, 1.0, 0, False, rng, top_p=0.79) for _ in range(8000)], minlength=4)
    assert draws[3] == 0 and abs(draws[0] / draws[:2].sum() - 0.5 / 0.8) < 0.03  # renormalised within the nucleus
    assert {sample.choose(logits, 1.0, 3, False, rng, top_p=1.0) for _ in range(500)} == {0, 1, 2}
    assert {sample.choose(logits, 1.0, 3, False, rng, top_p=0.8) for _ in range(500)} == {0, 1}  # after top-k


def test_top_p_on_the_command_line_and_in_python(cli, tmp_path):
    import charnn

    run = charnn.train(charnn.load_config("configs/hello.yaml", {"run.dir": str(tmp_path / "runs")}), progress=False)
    model = run.model()
    assert model.sample(seed="h", length=30, top_p=0.01, rng_seed=1) == model.sample(seed="h", length=30, greedy=True)
    code, out, err = cli("sample", "--checkpoint", run.dir / "best.npz", "--seed", "h", "--top-p", "0.5",
                         "--rng-seed", "3", "--length", "25", "--json")
    assert code == 0 and json.loads(out)["top_p"] == 0.5
    assert json.loads(out)["text"] == model.sample(seed="h", length=25, top_p=0.5, rng_seed=3)
    code, out, err = cli("sample", "--checkpoint", run.dir / "best.npz", "--top-p", "1.5")
    assert code == 1 and "--top-p must be in (0, 1]" in err


def test_choose_rows_is_choose_for_each_row():
    """The batch's vectorised draw gives what choose() gives row by row with the same uniform draw."""
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (40, 9))
    logits[5, :3] = 4.0  # ties at the top
    settings = [(1.0, 0, 1.0, False), (0.5, 3, 1.0, False), (1.3, 0, 0.7, False), (0.9, 2, 0.5, False),
                (1.0, 0, 1.0, True)]
    for temperature, top_k, top_p, greedy in settings:
        u = rng.random(40)
        rows = sample.choose_rows(logits, np.full(40, temperature), np.full(40, top_k), np.full(40, top_p),
                                  np.full(40, greedy), u)

        class Fixed:  # a generator whose one draw is the row's u
            def __init__(self, value):
                self.value = value

            def random(self):
                return self.value

        one = [sample.choose(logits[i], temperature, top_k, greedy, Fixed(u[i]), top_p) for i in range(40)]
        assert list(rows) == one, (temperature, top_k, top_p, greedy)
