"""Checkpoints: round trip without pickle, atomic writes, and every kind of damage reported."""

import json
import os

import numpy as np
import pytest

from charnn.training import checkpoint
from charnn.nn import model
from charnn.config import Config, to_dict
from charnn.errors import CharnnError
from charnn.nn.optim import OptimizerSpec, init_state


def make_checkpoint():
    """A small checkpoint laid out as `charnn train` writes one: params, optimizer state, carried state."""
    cfg = to_dict(Config())
    cfg["data"]["text"] = "abé"
    cfg["run"]["name"] = "test"
    cfg["model"].update(hidden_size=4, num_layers=2)
    cfg["train"].update(batch_size=2)
    params = model.init_params(3, 4, 2, rng=np.random.default_rng(0))
    meta = {"vocab": ["a", "b", "é"], "config": cfg, "step": 7}
    optim = init_state(OptimizerSpec(optimizer=cfg["train"]["optimizer"]), params)
    optim["t"] += 7
    hidden = [np.ones((2, 4), np.float32), np.zeros((2, 4), np.float32)]
    return checkpoint.Checkpoint(params, meta, optim, hidden)


def test_round_trip_and_readable_without_pickle(tmp_path):
    path = tmp_path / "c.npz"
    ckpt = make_checkpoint()
    checkpoint.save(path, ckpt)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(str(npz["meta"]))
        assert meta["format"] == "charnn-checkpoint" and meta["version"] == 1
        assert "rnn.1.W_hh" in npz.files and "optim.t" in npz.files and "state.0" in npz.files
    back = checkpoint.load(path)
    assert back.vocab_chars == ["a", "b", "é"] and back.meta["step"] == 7
    assert all(np.array_equal(back.params[k], v) for k, v in ckpt.params.items())
    assert int(back.optim_state["t"]) == 7
    np.testing.assert_array_equal(back.hidden[0], ckpt.hidden[0])


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "c.npz"
    checkpoint.save(path, make_checkpoint())
    before = path.read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", explode)
    with pytest.raises(OSError):
        checkpoint.save(path, make_checkpoint())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


def test_missing_truncated_and_garbage_checkpoints(tmp_path):
    with pytest.raises(CharnnError, match="not found"):
        checkpoint.load(tmp_path / "none.npz")
    path = tmp_path / "c.npz"
    checkpoint.save(path, make_checkpoint())
    data = path.read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CharnnError, match="truncated or corrupted"):
        checkpoint.load(tmp_path / "cut.npz")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip file at all")
    with pytest.raises(CharnnError, match="is not a charnn checkpoint"):  # another kind of file, not a damaged one
        checkpoint.load(tmp_path / "junk.npz")


def rewrite_meta(path, change):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(str(arrays["meta"]))
    change(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(path, **arrays)


def test_unknown_version_and_foreign_files(tmp_path):
    path = tmp_path / "c.npz"
    checkpoint.save(path, make_checkpoint())
    rewrite_meta(path, lambda m: m.update(version=99))
    with pytest.raises(CharnnError, match="format version 99"):
        checkpoint.load(path)
    np.savez(tmp_path / "other.npz", x=np.ones(3))
    with pytest.raises(CharnnError, match="not a charnn checkpoint"):
        checkpoint.load(tmp_path / "other.npz")


def test_nan_parameter_on_load_is_reported(tmp_path):
    ckpt = make_checkpoint()
    ckpt.params["head.W_hy"][0, 0] = np.nan
    arrays = dict(ckpt.params, meta=np.array(json.dumps(dict(ckpt.meta, format="charnn-checkpoint", version=1))))
    arrays.update({f"optim.{k}": v for k, v in ckpt.optim_state.items()})
    arrays.update({f"state.{i}": h for i, h in enumerate(ckpt.hidden)})
    np.savez(tmp_path / "c.npz", **arrays)  # written by something other than charnn (which refuses NaN)
    with pytest.raises(CharnnError, match="head.W_hy contains NaN"):
        checkpoint.load(tmp_path / "c.npz")


@pytest.mark.parametrize("where", ["params", "optim_state", "hidden"])
def test_a_checkpoint_with_nan_is_never_written(tmp_path, where):
    ckpt = make_checkpoint()
    checkpoint.save(tmp_path / "c.npz", ckpt)
    before = (tmp_path / "c.npz").read_bytes()
    bad = make_checkpoint()
    arrays = getattr(bad, where)
    if where == "hidden":
        bad.hidden = [np.full((2, 4), np.inf)]
    elif where == "optim_state":
        bad.optim_state = {"t": np.array(1.0), "m.head.b_y": np.array([np.nan])}
    else:
        next(iter(arrays.values())).flat[0] = np.nan
    with pytest.raises(checkpoint.NonFiniteError, match="NaN or infinite"):
        checkpoint.save(tmp_path / "c.npz", bad)
    assert (tmp_path / "c.npz").read_bytes() == before and len(list(tmp_path.iterdir())) == 1


def test_most_recent_finds_the_newest_run(tmp_path):
    with pytest.raises(CharnnError, match="train first"):
        checkpoint.most_recent(tmp_path)
    for age, name in ((100, "old"), (0, "new")):
        checkpoint.save(tmp_path / name / "best.npz", make_checkpoint())
        stamp = (tmp_path / name / "best.npz").stat().st_mtime - age
        os.utime(tmp_path / name / "best.npz", (stamp, stamp))
    assert checkpoint.most_recent(tmp_path).parent.name == "new"
