"""The feed-forward baseline (model.cell mlp): W characters in, the next one out, through the same model."""

import json

import numpy as np
import pytest

from charnn.training import checkpoint
from charnn.nn import model
from charnn.nn import reference
from charnn.nn import sampling as sample
from charnn.cli.app import main
from charnn.settings import load_config
from charnn.errors import CharnnError
from charnn.training.loop import train
from charnn.data.vocab import Vocab
from gradcheck import numerical_grad, rel_error

V, H, B, W = 5, 4, 3, 3


def make(num_layers=2, seed=0):
    rng = np.random.default_rng(seed)
    params = model.init_params(V, H, num_layers, init="normal", scale=0.5, rng=rng, dtype=np.float64, cell="mlp",
                               context=W)
    for p in params.values():
        if p.ndim == 1:
            p += rng.normal(0, 0.3, p.shape)
    state = model.zero_state(params, B, "mlp")
    state[0][:] = rng.integers(0, V + 1, state[0].shape)  # characters carried in (id + 1; 0 = before the text)
    return params, state, rng


def test_shapes_and_the_carried_characters():
    params, state, _ = make()
    assert params["rnn.0.W_x"].shape == (W * V, H) and params["rnn.1.W_x"].shape == (H, H)
    assert [s.shape for s in state] == [(B, W - 1), (B, 0)]
    ids = np.array([[1, 2, 3, 4]] * B)
    _, last, _ = model.forward(params, ids, ids, state, cell="mlp")
    np.testing.assert_array_equal(last[0], [[4, 5]] * B)  # the last W - 1 characters, as id + 1


@pytest.mark.parametrize("T", [1, 2, 7])
@pytest.mark.parametrize("noise", [model.NO_NOISE, model.Noise(dropout=0.3, input_dropout=0.3)])
def test_fast_model_equals_the_reference_and_finite_differences(T, noise):
    params, state, rng = make()
    ids, targets = rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))
    draw = lambda: np.random.default_rng(4) if noise.any else None  # noqa: E731
    loss, last, cache = model.forward(params, ids, targets, state, cell="mlp", noise=noise, rng=draw())
    grads, _ = model.backward(params, cache)
    masks = [None if m is None else m.transpose(1, 0, 2) for m in cache.masks]
    ref = reference.forward(params, "mlp", ids, targets, state, masks=masks, input_mask=cache.input_mask)
    ref_grads, _ = reference.backward(params, ref)
    assert loss == pytest.approx(ref["loss"], rel=1e-12)
    np.testing.assert_array_equal(last[0], ref["last"][0])
    for name in params:
        np.testing.assert_allclose(grads[name], ref_grads[name], rtol=1e-9, atol=1e-14, err_msg=name)
    f = lambda: model.forward(params, ids, targets, state, cell="mlp", noise=noise, rng=draw())[0]  # noqa: E731
    for name, p in params.items():
        assert rel_error(grads[name], numerical_grad(f, p), floor=1e-5) < 1e-6, name  # (dropped rows: exact zeros)


def test_chunked_forward_equals_one_long_forward():
    params, _, rng = make()
    state = model.zero_state(params, B, "mlp")
    ids, targets = rng.integers(0, V, (B, 9)), rng.integers(0, V, (B, 9))
    long_loss, long_last, _ = model.forward(params, ids, targets, state, cell="mlp")
    a, mid, _ = model.forward(params, ids[:, :4], targets[:, :4], state, cell="mlp")
    b, end, _ = model.forward(params, ids[:, 4:], targets[:, 4:], mid, cell="mlp")
    assert (4 * a + 5 * b) / 9 == pytest.approx(long_loss, rel=1e-12)
    np.testing.assert_array_equal(end[0], long_last[0])


def test_greedy_samples_are_the_models_predictions():
    params, _, rng = make()
    vocab = Vocab(tuple("abcde"))
    text = "ab" + "".join(sample.generate(params, "mlp", vocab, "ab", 12, greedy=True, rng=rng))
    ids = vocab.encode(text)
    _, _, cache = model.forward(params, ids[None, :-1], ids[None, 1:], model.zero_state(params, 1, "mlp"), cell="mlp")
    assert np.array_equal(cache.probs.argmax(axis=1)[1:], ids[2:])


def test_trains_evaluates_samples_and_reports(write_config, tmp_path, capsys):
    config = write_config()
    cfg = load_config(config, ["model.cell=mlp", "model.context=6", "train.steps=60", "model.num_layers=2"])
    result = train(cfg)
    ckpt = checkpoint.load(result.run_dir / "best.npz")
    assert ckpt.cell == "mlp" and [h.shape for h in ckpt.hidden] == [(2, 5), (2, 0)]
    (tmp_path / "t.txt").write_text("the cat sat on the mat. ")
    assert main(["eval", str(tmp_path / "t.txt"), "-c", str(result.run_dir / "best.npz"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chars"] == 23
    assert main(["sample", "-c", str(result.run_dir / "best.npz"), "-n", "20", "--seed", "the "]) == 0
    assert capsys.readouterr().out.startswith("the ")
    code = main(["inspect-gradients", "-c", str(result.run_dir / "best.npz")])
    err = capsys.readouterr().err
    assert code == 1 and "no recurrent state" in err and len(err.strip().splitlines()) == 1
    pytest.importorskip("matplotlib")
    from charnn.analysis.report import build_report

    html = open(build_report([result.run_dir])["report"], encoding="utf-8").read()
    assert "has no recurrent state" in html and "what the units learned" in html


@pytest.mark.parametrize("body, message", [
    ("model:\n  cell: mlp\n", "model.context: the mlp cell needs"),
    ("model:\n  cell: mlp\n  context: 0\n", "model.context: the mlp cell needs"),
    ("model:\n  cell: rnn\n  context: 4\n", "model.context: only the mlp cell"),
    ("model:\n  cell: mlp\n  context: 4\n  weight_drop: 0.2\n", "model.weight_drop: drops entries"),
])
def test_bad_mlp_configs(tmp_path, body, message):
    (tmp_path / "c.yaml").write_text("data:\n  text: abcabc\n" + body)
    with pytest.raises(CharnnError, match=message):
        load_config(tmp_path / "c.yaml")
