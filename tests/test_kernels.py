"""The fast path (charnn/nn/fast, the `fast` extra): held to the NumPy path it stands in for.

Where Numba is not installed the tests of the kernels themselves skip, saying so; the tests of
what happens without it (or when it does not compile) simulate that and run everywhere.
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from charnn import hints
from charnn.config import ModelConfig, TrainConfig
from charnn.data.vocab import Vocab
from charnn.nn import cells, fast, model, sampling
from charnn.nn.optim import OptimizerSpec, apply_update, clip_gradients, init_state
from charnn.nn.workspace import Workspace
from charnn.settings import load_config
from charnn.training import checkpoint, loop
from charnn.training.checkpoint import Progress
from charnn.training.loop import Callback, TrainState, optimizer_spec, train, train_step
from conftest import run

ROOT = Path(__file__).parent.parent
needs_numba = pytest.mark.skipif(importlib.util.find_spec("numba") is None,
                                 reason="the fast kernels need Numba: pip install -e '.[fast]'")
F = np.float32
NOISES = {"none": {}, "dropout": {"dropout": 0.2}, "locked": {"dropout": 0.2, "dropout_mode": "locked"},
          "weight_drop": {"weight_drop": 0.2}, "input_dropout": {"input_dropout": 0.1}}


@pytest.fixture(scope="module")
def K():
    """charnn.nn.fast.model, every cell's kernels compiled."""
    module = fast.load()
    for cell in fast.CELLS:
        fast.warm_up(cell)
    return module


def rel(a, b) -> float:
    """max |a - b| / max |b|: the error relative to the array's scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


# ---- the kernels against NumPy ----------------------------------------------------------------


@needs_numba
def test_tanh32_is_within_3e7_of_numpy_and_keeps_nan_and_infinities(K):
    from charnn.nn.fast.jit import tanh_array

    x = np.concatenate([np.linspace(-12, 12, 2_000_001, dtype=F), np.geomspace(1e-8, 1e-2, 1000, dtype=F),
                        np.array([0.0, -0.0, 4e-4, 7.99, 8.0, 1e30, -1e30], F)])
    y = np.empty_like(x)
    tanh_array(x, y)
    assert np.max(np.abs(y.astype(np.float64) - np.tanh(x.astype(np.float64)))) < 3e-7
    assert np.max(np.abs(y)) <= 1.0
    special = np.array([np.nan, np.inf, -np.inf], F)
    out = np.empty_like(special)
    tanh_array(special, out)
    assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == -1.0


@needs_numba
@pytest.mark.parametrize("cell", fast.CELLS)
def test_fast_cells_equal_the_numpy_cells(K, cell):
    from charnn.nn.fast.cells import CELLS as FAST

    rng = np.random.default_rng(0)
    c, T, B, H = cells.get(cell), 5, 3, 8
    p = {k: rng.normal(0, 0.4, s).astype(F) for k, s in c.param_shapes(H, H).items()}
    xa = rng.normal(0, 1, (T + 1, B, c.gates * H)).astype(F)
    state0 = rng.normal(0, 0.5, (B, c.state_width(H))).astype(F)
    dh, dlast = rng.normal(0, 1, (T, B, H)).astype(F), rng.normal(0, 1, (B, c.state_width(H))).astype(F)
    ws = Workspace()
    h, last, cache = c.forward(xa.copy(), state0, p, ws)
    h2, last2, cache2 = FAST[cell].forward(xa.copy(), state0, p, ws)
    assert type(cache2) is type(cache)
    for name in cache._fields[:-1]:  # every array the cache keeps (what reports and jacobians read)
        assert rel(getattr(cache2, name), getattr(cache, name)) < 1e-6, name
    assert rel(h2, h) < 1e-6 and rel(last2, last) < 1e-6
    dxa, grads, d0 = c.backward(dh.copy(), cache, p, ws, dlast)
    dxa2, grads2, d02 = FAST[cell].backward(dh.copy(), cache2, p, ws, dlast)
    assert rel(dxa2, dxa) < 1e-6 and rel(d02, d0) < 1e-6
    assert set(grads2) == set(grads) and all(rel(grads2[k], grads[k]) < 1e-6 for k in grads)


def chunk(V, B, T, rng):
    return rng.integers(0, V, (B, T)), rng.integers(0, V, (B, T))


@needs_numba
@pytest.mark.parametrize("cell", fast.CELLS)
@pytest.mark.parametrize("layers", [1, 2, 3])
@pytest.mark.parametrize("noise", ["none", "dropout", "locked", "weight_drop+input_dropout"])
def test_a_chunks_loss_states_and_gradients_equal_numpys(K, cell, layers, noise):
    kw = {k: v for name in noise.split("+") for k, v in NOISES[name].items()}
    m = ModelConfig(cell=cell, hidden_size=16, num_layers=layers, **kw)
    rng = np.random.default_rng(layers)
    params = model.init_for(m, 11, np.random.default_rng(1))
    ids, targets = chunk(11, 3, 7, rng)
    h0 = [rng.normal(0, 0.5, s.shape).astype(F) for s in model.zero_state(params, 3, cell)]
    loss, last, cache = model.forward(params, ids, targets, h0, cell=cell, noise=model.Noise.of(m),
                                      rng=np.random.default_rng(5))
    grads, _ = model.backward(params, cache)
    loss2, last2, grads2, held = K.loss_and_grads(params, ids, targets, h0, cell=cell, noise=model.Noise.of(m),
                                                  rng=np.random.default_rng(5), ws=Workspace())
    assert abs(loss2 - loss) / loss < 1e-6
    assert all(rel(b, a) < 1e-6 for a, b in zip(last, last2))
    assert list(grads2) == list(grads) and all(rel(grads2[k], grads[k]) < 1e-6 for k in grads), \
        {k: rel(grads2[k], grads[k]) for k in grads}
    loss3, last3, _ = K.forward(params, ids, targets, h0, cell=cell, ws=Workspace())  # evaluation's forward
    loss4, last4, _ = model.forward(params, ids, targets, h0, cell=cell)
    assert abs(loss3 - loss4) / loss4 < 1e-6 and all(rel(b, a) < 1e-6 for a, b in zip(last4, last3))


@needs_numba
def test_a_nan_reaches_the_loss_and_the_gradients(K):
    params = model.init_params(7, 8, 1, rng=np.random.default_rng(0), cell="lstm")
    params["rnn.0.W_h"][0, 0] = np.nan
    ids, targets = chunk(7, 2, 4, np.random.default_rng(0))
    loss, _, grads, _ = K.loss_and_grads(params, ids, targets, model.zero_state(params, 2, "lstm"), cell="lstm")
    assert np.isnan(loss) and not np.isfinite(grads["rnn.0.W_h"]).all()


@needs_numba
@pytest.mark.parametrize("optimizer, decay", [("adam", 0.0), ("adam", 0.05), ("adamw", 0.1), ("sgd", 0.01),
                                              ("rmsprop", 0.0)])
@pytest.mark.parametrize("clip", [0.0, 0.5, 1e9])
def test_the_update_is_bit_identical_to_numpys(K, optimizer, decay, clip):
    from charnn.nn.fast import optim as fast_optim

    rng = np.random.default_rng(0)
    spec = OptimizerSpec(optimizer, weight_decay=decay)
    params = model.init_params(9, 12, 2, rng=rng, cell="gru")
    state = init_state(spec, params)
    p2, s2 = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in state.items()}
    for step in range(3):
        grads = {k: rng.normal(0, 1, v.shape).astype(F) for k, v in params.items()}
        g2 = {k: v.copy() for k, v in grads.items()}
        norm, clipped = clip_gradients(grads, clip)
        apply_update(spec, params, grads, state, 3e-3)
        norm2, clipped2, scale = fast_optim.clip(g2, clip, "norm")
        fast_optim.update(spec, p2, g2, s2, 3e-3, scale)
        assert (norm2, clipped2) == (norm, clipped)
        assert all(np.array_equal(p2[k], params[k]) for k in params)
        assert all(np.array_equal(s2[k], state[k]) for k in state)


# ---- training on either path ------------------------------------------------------------------


TEXT = (ROOT / "data" / "rnn_notes.txt").read_text(encoding="utf-8")


def trajectory(cell, layers, kw, kernels, steps=200, optimizer="adam", decay=0.0, lr=3e-3):
    """The losses of `steps` training steps on the project's notes, B=4, T=16, H=24."""
    vocab = Vocab.from_text(TEXT)
    ids = np.asarray(vocab.encode(TEXT))
    B, T = 4, 16
    m = ModelConfig(cell=cell, hidden_size=24, num_layers=layers, **kw)
    t = TrainConfig(batch_size=B, seq_len=T, lr=lr, optimizer=optimizer, weight_decay=decay)
    params = model.init_for(m, vocab.size, np.random.default_rng(0))
    spec = optimizer_spec(t)
    state = TrainState(params, init_state(spec, params), model.zero_state(params, B, cell), np.random.default_rng(1),
                       Progress())
    ws, out, rows = Workspace(), [], (len(ids) - 1) // T
    for step in range(steps):
        starts = ((step * B + np.arange(B)) % rows) * T
        x = np.stack([ids[s:s + T] for s in starts]).astype(np.int32)
        y = np.stack([ids[s + 1:s + T + 1] for s in starts]).astype(np.int32)
        out.append(train_step(state, x, y, spec, lr, t, m, ws, kernels).loss)
    return np.array(out)


CASES = [(cell, layers, "none") for cell in fast.CELLS for layers in (1, 2, 3)] + \
        [(cell, 2, noise) for cell in fast.CELLS for noise in ("dropout", "locked", "weight_drop", "input_dropout")]


@needs_numba
@pytest.mark.parametrize("cell, layers, noise", CASES)
def test_200_training_steps_give_the_same_losses_on_either_path(K, cell, layers, noise):
    a = trajectory(cell, layers, NOISES[noise], None)
    b = trajectory(cell, layers, NOISES[noise], K)
    assert a[-1] < a[0] - 0.5  # it learned something on the way
    assert np.max(np.abs(b - a) / a) < 1e-5


@needs_numba
@pytest.mark.parametrize("optimizer, decay", [("adamw", 0.1), ("adam", 0.01), ("sgd", 0.0)])
def test_the_optimizers_train_alike_on_either_path(K, optimizer, decay):
    lr = 0.05 if optimizer == "sgd" else 3e-3
    a = trajectory("lstm", 1, {}, None, 100, optimizer, decay, lr)
    b = trajectory("lstm", 1, {}, K, 100, optimizer, decay, lr)
    assert np.max(np.abs(b - a) / a) < 1e-5


@needs_numba
def test_the_workspace_stays_the_same_size_from_step_to_step(K):
    ws = Workspace()
    m, t = ModelConfig(cell="gru", hidden_size=8, num_layers=2, dropout=0.1), TrainConfig(batch_size=2, seq_len=4)
    params = model.init_for(m, 5, np.random.default_rng(0))
    spec = optimizer_spec(t)
    state = TrainState(params, init_state(spec, params), model.zero_state(params, 2, "gru"), np.random.default_rng(1),
                       Progress())
    x, y = chunk(5, 2, 4, np.random.default_rng(0))
    sizes = []
    for _ in range(4):
        train_step(state, x, y, spec, 1e-3, t, m, ws, K)
        sizes.append(sum(len(v) for v in ws._free.values()))
    assert sizes[1] == sizes[2] == sizes[3]  # every array taken was given back, and reused


def metric_kernels(run_dir) -> set:
    lines = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return {m["kernels"] for m in lines if "train_loss" in m}


def step_losses(run_dir) -> dict:
    lines = [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return {m["step"]: m["train_loss"] for m in lines if "train_loss" in m}


@needs_numba
@pytest.mark.parametrize("first, then", [("fast", "numpy"), ("numpy", "fast")])
def test_checkpoints_match_and_a_run_resumes_on_the_other_path(K, write_config, tmp_path, first, then):
    path = write_config()
    extra = ["model.cell=lstm", "model.num_layers=2", "model.dropout=0.1", "train.optimizer=adamw",
             "train.weight_decay=0.1", "train.steps=20"]
    whole = train(load_config(path, extra + ["train.kernels=numpy"]), tmp_path / "whole")
    half = train(load_config(path, extra + ["train.steps=10", f"train.kernels={first}"]), tmp_path / "split")
    assert half.kernels == first and metric_kernels(half.run_dir) == {first}
    a, b = checkpoint.load(whole.run_dir / "latest.npz"), checkpoint.load(half.run_dir / "latest.npz")
    for ours, theirs in ((a.params, b.params), (a.optim_state, b.optim_state)):
        assert {k: (v.shape, v.dtype) for k, v in ours.items()} == {k: (v.shape, v.dtype) for k, v in theirs.items()}
    assert [(s.shape, s.dtype) for s in a.hidden] == [(s.shape, s.dtype) for s in b.hidden]
    assert set(a.meta) == set(b.meta)
    resumed = train(load_config(path, extra + [f"train.kernels={then}"]), tmp_path / "split", resume=True)
    assert resumed.step == 20 and resumed.kernels == then
    assert metric_kernels(resumed.run_dir) == {first, then}
    ours, theirs = step_losses(resumed.run_dir), step_losses(whole.run_dir)
    assert ours.keys() == theirs.keys() and all(abs(ours[k] - theirs[k]) / theirs[k] < 1e-5 for k in ours)


# ---- when the fast path cannot run ------------------------------------------------------------


class Messages(Callback):
    def __init__(self):
        self.lines = []

    def on_message(self, text):
        self.lines.append(text)


def hide_numba(monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now fails as if it were not installed


@pytest.mark.parametrize("how", ["config", "command line"])
def test_fast_without_numba_trains_on_numpy_with_one_notice(write_config, monkeypatch, capsys, how):
    hide_numba(monkeypatch)
    path = write_config()
    if how == "config":
        said = Messages()
        train(load_config(path, ["train.kernels=fast", "model.cell=gru"]), callback=said)
        lines = said.lines
    else:
        code, out, err = run(capsys, "train", path, "--set", "train.kernels=fast", "--set", "model.cell=gru")
        assert code == 0 and "Traceback" not in err
        lines = err.splitlines()
    notes = [line for line in lines if "kernels" in line]
    assert notes == [f"note: the fast kernels cannot run: Numba is not installed (the fast extra: "
                     f"{hints.install('fast')}); training on NumPy"], lines
    assert metric_kernels(Path(load_config(path).run.dir) / "exp") == {"numpy"}


def test_auto_without_numba_says_nothing(write_config, monkeypatch):
    hide_numba(monkeypatch)
    said = Messages()
    result = train(load_config(write_config(), ["train.max_minutes=5"]), callback=said)  # a run auto would speed up
    assert not [line for line in said.lines if "kernels" in line] and result.kernels == "numpy"


def test_a_compile_failure_trains_on_numpy_with_one_notice(write_config, monkeypatch):
    def broken(cell):
        raise RuntimeError("LLVM ERROR: simulated\nsecond line")

    hide_numba(monkeypatch)  # runs where Numba is not installed too: nothing here may import it
    monkeypatch.setattr(fast, "load", lambda: object())
    monkeypatch.setattr(fast, "warm_up", broken)
    monkeypatch.setattr(fast, "cached", lambda: True)
    monkeypatch.setattr(fast, "compiled_before", lambda cell: True)
    monkeypatch.setattr(fast, "mark_compiled", lambda cell: None)
    for kernels in ("auto", "fast"):
        said = Messages()
        result = train(load_config(write_config(), ["train.max_minutes=5", f"train.kernels={kernels}"]),
                       callback=said, force=True)
        notes = [line for line in said.lines if "kernels" in line]
        assert notes == ["note: the fast kernels did not compile (LLVM ERROR: simulated); training on NumPy "
                         "(train.kernels=numpy skips them)"], said.lines
        assert result.kernels == "numpy" and result.step == 20


def test_the_first_compile_is_announced(write_config, monkeypatch):
    monkeypatch.setattr(fast, "load", lambda: SimpleNamespace(forward=model.forward))
    monkeypatch.setattr(fast, "warm_up", lambda cell: None)
    monkeypatch.setattr(fast, "cached", lambda: True)
    monkeypatch.setattr(fast, "compiled_before", lambda cell: False)
    monkeypatch.setattr(fast, "mark_compiled", lambda cell: None)
    monkeypatch.setattr(loop, "train_step", lambda *a, **k: loop.StepResult(1.0, 1.0, False, True))
    said = Messages()
    train(load_config(write_config(), ["train.kernels=fast"]), callback=said)
    assert [line for line in said.lines if "kernels" in line] == ["compiling the fast kernels (first run only) ..."]


@pytest.mark.parametrize("extra, why", [(["model.dtype=float64"], "model.dtype float64"),
                                        (["model.cell=mlp", "model.context=3"], "the mlp cell")])
def test_fast_says_what_the_kernels_do_not_run(write_config, extra, why):
    said = Messages()
    result = train(load_config(write_config(), extra + ["train.kernels=fast"]), callback=said)
    assert [line for line in said.lines if "kernels" in line] == [
        f"note: train.kernels=fast: the fast kernels run float32 rnn, lstm, gru models, not {why}; training on NumPy"]
    assert result.kernels == "numpy"
    said = Messages()
    result = train(load_config(write_config(), extra + ["train.max_minutes=5"]), callback=said, force=True)
    assert not [line for line in said.lines if "kernels" in line] and result.kernels == "numpy"  # auto: silently


def test_short_runs_and_numpy_stay_on_numpy(write_config, monkeypatch):
    monkeypatch.setattr(fast, "load", lambda: pytest.fail("auto loaded the kernels for a short run"))
    assert train(load_config(write_config())).kernels == "numpy"  # 20 steps: not worth loading them
    result = train(load_config(write_config(), ["train.kernels=numpy", "train.max_minutes=5"]), force=True)
    assert result.kernels == "numpy"


def test_train_kernels_must_be_a_known_choice(write_config, capsys):
    code, _, err = run(capsys, "train", write_config(), "--set", "train.kernels=numba")
    assert code == 1 and "train.kernels=numba: 'numba' is not one of auto, numpy, fast" in err


WARM_UP_COVERS_TRAINING = """
import sys
import numpy as np
from numba.core.registry import CPUDispatcher
from charnn.nn import fast
from charnn.nn.fast import cell_kernels, chunk_kernels, jit
from charnn.settings import load_config
from charnn.training.loop import train

def signatures():
    return {(m.__name__, n): len(v.signatures) for m in (cell_kernels, chunk_kernels, jit)
            for n, v in vars(m).items() if isinstance(v, CPUDispatcher)}

fast.load()
for cell in fast.CELLS:
    fast.warm_up(cell)
before = signatures()
for cell in fast.CELLS:
    train(load_config(sys.argv[1], [f"model.cell={cell}", "model.num_layers=2", "train.kernels=fast",
                                    "train.steps=3", f"run.name={cell}", "run.eval_every=2"]))
after = signatures()
print({k: (before.get(k), n) for k, n in after.items() if before.get(k) != n})
"""


@needs_numba
def test_warm_up_compiles_every_signature_training_calls(write_config):
    """What compiles after the warm-up compiles outside its try: a failure there would be a traceback."""
    done = subprocess.run([sys.executable, "-c", WARM_UP_COVERS_TRAINING, str(write_config())],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "{}", done.stdout


@needs_numba
def test_a_second_process_loads_the_kernels_from_the_cache(write_config, tmp_path):
    env = {**os.environ, "CHARNN_NUMBA_CACHE": str(tmp_path / "cache")}
    env.pop("NUMBA_CACHE_DIR", None)  # which would take precedence over charnn's folder
    path = write_config()
    command = [sys.executable, "-m", "charnn", "train", str(path), "--force", "--set", "train.kernels=fast",
               "--set", "train.steps=3"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    assert "compiling the fast kernels (first run only) ..." in first.stderr
    assert "compiling" not in second.stderr and "note:" not in second.stderr
    assert any((tmp_path / "cache").rglob("*.nbc"))  # Numba's compiled code, kept


@needs_numba
def test_the_cache_folder_follows_the_environment(K, monkeypatch, tmp_path):
    from charnn.nn.fast import jit

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(jit.numba_config, "CACHE_DIR", "")
    monkeypatch.setenv("CHARNN_NUMBA_CACHE", "off")
    assert jit._cache_dir() is None
    monkeypatch.setenv("CHARNN_NUMBA_CACHE", "numba")
    assert jit._cache_dir() == ""
    monkeypatch.setenv("CHARNN_NUMBA_CACHE", str(tmp_path / "c"))
    assert jit._cache_dir() == str(tmp_path / "c" / jit._source_version())
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("CHARNN_NUMBA_CACHE", str(tmp_path / "file"))  # cannot be a folder: no cache
    assert jit._cache_dir() is None


# ---- sampling ------------------------------------------------------------------------------------


@needs_numba
@pytest.mark.parametrize("cell", fast.CELLS)
def test_a_reader_on_the_kernels_draws_the_same_text(K, cell):
    params = model.init_params(13, 24, 2, rng=np.random.default_rng(3), cell=cell, scale=0.3)

    def text(reader, kernels):
        rng, current, ids, logits = np.random.default_rng(7), 0, [], []
        for _ in range(300):
            logits.append(reader.logits(current))
            current = sampling.choose(logits[-1], 0.8, 0, False, rng, kernels=kernels)
            ids.append(current)
        return ids, np.array(logits), reader.states

    fast_reader = sampling.Reader(params, cell, "fast")
    assert fast_reader.fast is not None
    ids, logits, states = text(fast_reader, "fast")
    plain = sampling.Reader(params, cell)  # NumPy unless asked, though this process has the kernels loaded
    assert plain.fast is None
    ids2, logits2, states2 = text(plain, "numpy")
    assert ids == ids2 and rel(logits, logits2) < 1e-5
    assert all(rel(a, b) < 1e-5 for a, b in zip(states, states2))


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    """A small float32 LSTM's run directory (trained on NumPy), for sampling's choice of kernels."""
    base = tmp_path_factory.mktemp("lstm")
    text = base / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog\n" * 40)
    cfg = base / "c.yaml"
    cfg.write_text(f"data: {{path: {text}}}\nmodel: {{cell: lstm, hidden_size: 24}}\n"
                   f"train: {{steps: 30, batch_size: 4, seq_len: 16, kernels: numpy}}\n"
                   f"run: {{dir: {base / 'runs'}, name: fox, eval_every: 0, sample_every: 0}}\n")
    train(load_config(cfg))
    return base / "runs" / "fox" / "best.npz"


@needs_numba
def test_sampling_reads_on_numpy_unless_asked_though_the_kernels_are_loaded(K, lstm_run):
    import charnn

    model_ = charnn.load(lstm_run)
    params = model_._ckpt.params
    assert sampling.Reader(params, "lstm").fast is None  # this process has the kernels (K): still NumPy
    assert sampling.Reader(params, "lstm", "fast").fast is not None
    numpy_text = model_.sample("the", length=400, rng_seed=5)
    fast_text = model_.sample("the", length=400, rng_seed=5, kernels="fast")
    assert len(fast_text) == 400 and fast_text[:100] == numpy_text[:100]  # float32 rounding apart: long runs may part
    # NumPy's text is the one a process that never loaded the kernels draws
    code = ("import charnn, sys; print(charnn.load(sys.argv[1]).sample('the', length=400, rng_seed=5), end='')\n"
            "assert 'charnn.nn.fast.model' not in sys.modules")
    fresh = subprocess.run([sys.executable, "-c", code, str(lstm_run)], capture_output=True, text=True, check=True)
    assert fresh.stdout == numpy_text


@needs_numba
def test_sampling_kernels_that_do_not_compile_read_and_draw_on_numpy(K, lstm_run, monkeypatch):
    import charnn

    model_ = charnn.load(lstm_run)
    expected = model_.sample("the", length=100, rng_seed=2)
    monkeypatch.setattr(fast, "reader", lambda *a: None)  # as when warmup.sampling fails
    monkeypatch.setattr(fast, "choose", lambda *a: pytest.fail("drew on kernels that did not compile"))
    assert model_.sample("the", length=100, rng_seed=2, kernels="fast") == expected


@needs_numba
def test_charnn_sample_kernels_fast(lstm_run, capsys):
    code, out, err = run(capsys, "sample", "--checkpoint", lstm_run, "--seed", "the", "--length", "50",
                         "--rng-seed", "1", "--kernels", "fast")
    assert code == 0 and out.startswith("the") and len(out.rstrip("\n")) == 53, err


def test_charnn_sample_kernels_fast_without_numba_is_one_line(lstm_run, capsys, monkeypatch):
    hide_numba(monkeypatch)  # load() imports Numba first, so this holds whatever this process has loaded
    code, out, err = run(capsys, "sample", "--checkpoint", lstm_run, "--seed", "the", "--kernels", "fast")
    assert code != 0 and out == ""
    assert err.strip() == (f"error: --kernels fast cannot run here: Numba is not installed; install the fast extra "
                           f"({hints.install('fast')}) or sample with --kernels numpy"), err
    code, out, err = run(capsys, "sample", "--checkpoint", lstm_run, "--kernels", "quick")
    assert code != 0 and out == "" and err.strip() == "error: --kernels must be numpy or fast (got 'quick')", err
    import charnn

    with pytest.raises(charnn.CharnnError, match=r"^kernels='fast' cannot run here: Numba is not installed; .* "
                                                 r"or sample with kernels='numpy'$"):
        charnn.load(lstm_run).sample("the", kernels="fast")


@needs_numba
def test_the_compiled_draw_is_numpys(K):
    rng = np.random.default_rng(0)
    cases = [(rng.normal(0, s, 65).astype(F), t, rng.random()) for s in (0.1, 3, 30) for t in (0.5, 1, 2)
             for _ in range(300)]
    drawn = [fast.choose(z, t, u) for z, t, u in cases]

    class Fixed:
        def __init__(self, u):
            self.u = u

        def random(self):
            return self.u

    assert drawn == [sampling.choose(z, t, 0, False, Fixed(u)) for z, t, u in cases]
