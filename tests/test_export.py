"""charnn export: safetensors (torch's names, read back by charnn and by torch), ONNX (a step graph
run by onnxruntime), the web page (self-contained; in a browser: tests/test_web_export.py) and the
hf folder; and the bad inputs an export must survive."""

import dataclasses
import importlib.util
import json
import os
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

import charnn
from charnn.formats import tensors
from charnn.nn.sampling import Reader
from conftest import CELLS, RECURRENT_CELLS, assert_one_line_error, window

TEXT = Path(__file__).resolve().parents[1].joinpath("data", "rnn_notes.txt").read_text(encoding="utf-8")
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_ONNXRUNTIME = importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def random_model(cell: str, layers: int = 2, hidden: int = 10, std: float = 0.4, seed: int = 0) -> charnn.Model:
    """A float32 model with weights large enough that every unit and gate does something."""
    fresh = charnn.init_model({"data": {"text": TEXT[:3000]}, "model": {"cell": cell, "num_layers": layers,
                                                                       "hidden_size": hidden, "context": window(cell) if cell == "mlp" else 0},
                               "run": {"seed": seed}}, init_std=std)
    ckpt = fresh._ckpt
    ckpt.params = {k: v.astype(np.float32) for k, v in ckpt.params.items()}
    rng = np.random.default_rng(seed)
    for k, v in ckpt.params.items():  # the biases too: a bias that is always 0 would hide a mixed-up one
        if v.ndim == 1:
            v[:] = rng.normal(0, std, v.shape)
    return fresh


def logits_of(m: charnn.Model, text: str) -> np.ndarray:
    """charnn's logits after each character of `text`, from a zero state."""
    reader = Reader(m.params, m.cell)
    return np.array([reader.logits(int(i)) for i in m.vocab.encode(text)])


# ---- the torch names ----------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_torch_names_map_back_to_the_same_parameters(cell):
    m = random_model(cell, layers=2)
    named = tensors.to_torch(m.params, cell)
    assert list(named) == list(tensors.shapes(cell, m.vocab.size, 10, 2, window(cell)))
    assert {k: v.shape for k, v in named.items()} == tensors.shapes(cell, m.vocab.size, 10, 2, window(cell))
    back = tensors.from_torch(named, cell, 2)
    assert list(back) == list(m.params)
    for k in m.params:
        assert np.array_equal(back[k], m.params[k]), k


def test_torch_names_follow_torch_gate_order_and_bias_split():
    m = random_model("gru", layers=1)
    named = tensors.to_torch(m.params, "gru")
    H = 10
    assert np.array_equal(named["rnn.weight_hh_l0"][H:2 * H], m.params["rnn.0.W_h"][:, H:2 * H].T)  # z block
    assert np.array_equal(named["rnn.bias_hh_l0"], m.params["rnn.0.b_h"])
    lstm = random_model("lstm", layers=1)
    assert not tensors.to_torch(lstm.params, "lstm")["rnn.bias_hh_l0"].any()  # one bias, exported as bias_ih


# ---- safetensors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cell", CELLS)
def test_a_float32_safetensors_export_reads_back_exactly(cell, tmp_path):
    m = random_model(cell)
    done = charnn.export(m, tmp_path / "m.safetensors", format="safetensors")
    assert done.to_dict() == {"path": str(tmp_path / "m.safetensors"), "format": "safetensors",
                              "bytes": (tmp_path / "m.safetensors").stat().st_size, "dtype": "float32", "cell": cell,
                              "parameters": m.num_parameters}
    back = charnn.load(done.path)
    assert list(back.params) == list(m.params)
    for k in m.params:
        assert back.params[k].dtype == np.float32 and np.array_equal(back.params[k], m.params[k]), k
    assert back.vocab == m.vocab and back.config.model == dataclasses.replace(m.config.model, dtype="float32")
    assert back.sample(seed="The ", length=60, rng_seed=3) == m.sample(seed="The ", length=60, rng_seed=3)
    info = charnn.describe(done.path)
    assert info["format"] == "charnn-safetensors" and info["parameters"] == m.num_parameters
    assert info["cell"] == cell and info["dtype"] == "float32"


def test_a_float16_export_holds_the_rounded_weights(tmp_path):
    m = random_model("lstm")
    back = charnn.load(charnn.export(m, tmp_path / "m.safetensors", format="safetensors", dtype="float16").path)
    for k in m.params:
        assert np.array_equal(back.params[k], m.params[k].astype(np.float16).astype(np.float32)), k
    assert charnn.describe(tmp_path / "m.safetensors")["dtype"] == "float16"


def test_the_metadata_holds_config_vocabulary_and_format_version(tmp_path):
    from safetensors import safe_open

    m = random_model("rnn")
    path = charnn.export(m, tmp_path / "m.safetensors", format="safetensors").path
    with safe_open(str(path), "numpy") as f:
        meta = f.metadata()
        names = set(f.keys())
    assert meta["format"] == "charnn" and meta["format_version"] == "1"
    assert json.loads(meta["vocab"]) == list(m.vocab.chars)
    assert json.loads(meta["config"])["model"]["cell"] == "rnn"
    assert names == {"rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0", "rnn.bias_hh_l0", "rnn.weight_ih_l1",
                     "rnn.weight_hh_l1", "rnn.bias_ih_l1", "rnn.bias_hh_l1", "head.weight", "head.bias"}


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch (pip install torch): the export is loaded by torch.nn modules")
@pytest.mark.parametrize("cell", RECURRENT_CELLS)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_torch_modules_load_the_export_and_give_the_same_logits(cell, layers, tmp_path):
    import torch
    from safetensors.torch import load_file

    m = random_model(cell, layers=layers, hidden=12)
    path = charnn.export(m, tmp_path / "m.safetensors", format="safetensors").path
    V, H = m.vocab.size, 12
    rnn = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](V, H, layers, batch_first=True)
    head = torch.nn.Linear(H, V)
    torch.nn.ModuleDict({"rnn": rnn, "head": head}).load_state_dict(load_file(str(path)), strict=True)
    text = TEXT[:500]
    ids = torch.tensor(m.vocab.encode(text), dtype=torch.int64)[None]
    with torch.no_grad():
        logits = head(rnn(torch.nn.functional.one_hot(ids, V).float())[0])[0].numpy()
    assert np.abs(logits - logits_of(m, text)).max() < 1e-5


# ---- onnx ---------------------------------------------------------------------------------------------


def onnx_logits(path: Path, m: charnn.Model, text: str) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    L, H = m.config.model.num_layers, m.config.model.hidden_size
    feed = {"h": np.zeros((L, 1, H), np.float32)}
    if m.cell == "lstm":
        feed["c"] = np.zeros((L, 1, H), np.float32)
    out = []
    for i in m.vocab.encode(text):
        logits, *states = session.run(None, dict(feed, char=np.array([i], np.int64)))
        feed.update(zip(["h", "c"], states))
        out.append(logits[0])
    return np.array(out)


@pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="needs onnx and onnxruntime (pip install onnx onnxruntime)")
@pytest.mark.parametrize("cell", RECURRENT_CELLS)
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_onnxruntime_steps_give_charnns_logits(cell, layers, tmp_path):
    import onnx

    m = random_model(cell, layers=layers, hidden=12)
    path = charnn.export(m, tmp_path / "m.onnx", format="onnx").path
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.input] == ["char", "h"] + (["c"] if cell == "lstm" else [])
    assert [o.name for o in proto.graph.output] == ["logits", "h_out"] + (["c_out"] if cell == "lstm" else [])
    assert json.loads({p.key: p.value for p in proto.metadata_props}["vocab"]) == list(m.vocab.chars)
    text = TEXT[:500]
    assert np.abs(onnx_logits(path, m, text) - logits_of(m, text)).max() < 1e-5


@pytest.mark.skipif(not HAS_ONNXRUNTIME, reason="needs onnx and onnxruntime (pip install onnx onnxruntime)")
def test_a_float16_onnx_export_computes_with_the_rounded_weights(tmp_path):
    m = random_model("gru", hidden=40)
    path = charnn.export(m, tmp_path / "m.onnx", format="onnx", dtype="float16").path
    rounded = charnn.load(charnn.export(m, tmp_path / "m.safetensors", format="safetensors", dtype="float16").path)
    assert np.abs(onnx_logits(path, m, TEXT[:100]) - logits_of(rounded, TEXT[:100])).max() < 1e-5
    assert path.stat().st_size < 0.6 * charnn.export(m, tmp_path / "m32.onnx", format="onnx").bytes


@pytest.mark.parametrize("format", ["onnx", "web", "hf"])
def test_the_mlp_cell_is_refused_naming_the_format_that_takes_it(format, tmp_path, cli):
    m = random_model("mlp")
    charnn.export(m, tmp_path / "mlp.safetensors", format="safetensors")
    code, out, err = cli("export", tmp_path / "mlp.safetensors", "--format", format, "-o", tmp_path / "out")
    assert code == 1 and "exports to safetensors only" in err and "--format safetensors" in err
    assert_one_line_error(err)
    assert not (tmp_path / "out").exists()


# ---- web ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_the_web_page_is_self_contained_and_small(dtype, tmp_path):
    import base64
    import re

    m = random_model("lstm", hidden=40)
    done = charnn.export(m, tmp_path / "m.html", format="web", **({} if dtype == "float16" else {"dtype": dtype}))
    assert done.dtype == dtype
    page = done.path.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "no external resource"
    assert "<script src" not in page and "@import" not in page and "fetch(" not in page
    weights = sum(v.size for v in tensors.to_torch(m.params, "lstm").values()) * np.dtype(dtype).itemsize
    assert done.bytes <= 1.4 * len(base64.b64encode(bytes(weights))) + 100_000
    model_json = json.loads(re.search(r'id="charnn-model">(.*?)</script>', page, re.S).group(1))
    assert model_json["cell"] == "lstm" and model_json["dtype"] == dtype and model_json["vocab"] == list(m.vocab.chars)


def test_the_web_page_cannot_be_broken_out_of_by_the_vocabulary_or_name(tmp_path):
    import re

    m = random_model("rnn")
    ckpt = m._ckpt
    ckpt.meta["vocab"] = sorted(set(ckpt.meta["vocab"]) - {"a", "b"} | {"<", "/"})  # "</script>" must never appear raw
    ckpt.__dict__.pop("vocab", None)
    ckpt.config = charnn.load_config(dict(ckpt.meta["config"], run={"name": "<b>x"}))
    page = charnn.export(m, tmp_path / "m.html", format="web").path.read_text(encoding="utf-8")
    assert page.count("</script>") == 4  # the model JSON, the two blobs, the code: each closes once
    outside_scripts = re.sub(r"<script.*?</script>", "", page, flags=re.S)
    assert "&lt;b&gt;x" in outside_scripts and "<b>x" not in outside_scripts


def test_the_wasm_kernel_is_a_well_formed_module():
    from charnn.formats.wasm import matvec_module

    code = matvec_module()
    assert code[:8] == b"\0asm\x01\0\0\0" and len(code) < 2000
    assert b"matvec" in code and b"env" in code and b"mem" in code


# ---- hf -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small LSTM trained on the notes, with a test split, so the card scores it."""
    folder = tmp_path_factory.mktemp("hf")
    (folder / "notes.txt").write_text(TEXT, encoding="utf-8")
    run = charnn.train({"data": {"path": str(folder / "notes.txt"), "val_fraction": 0.1, "test_fraction": 0.1},
                        "model": {"cell": "lstm", "hidden_size": 16}, "train": {"steps": 40, "batch_size": 8, "seq_len": 16},
                        "run": {"dir": str(folder / "runs"), "name": "notes", "eval_every": 20}}, progress=False)
    return run.dir / "best.npz"


def test_the_hf_folder_holds_weights_config_card_and_page(trained, tmp_path, cli):
    code, out, err = cli("export", trained, "--format", "hf", "-o", tmp_path / "notes-lstm", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert set(done) == {"path", "format", "bytes", "dtype", "cell", "parameters"}
    folder = tmp_path / "notes-lstm"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors", "web.html"]
    assert done["bytes"] == sum(p.stat().st_size for p in folder.iterdir())
    card = (folder / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "charnn" and "lstm" in front["tags"] and front["training_data"] == "notes.txt"
    model = charnn.load(trained)
    assert front["validation_bits_per_char"] == round(model._ckpt.meta["val_loss"] / np.log(2), 4)
    test = model.score(split="test", streams=model.config.run.eval_streams).bits_per_char
    assert front["test_bits_per_char"] == round(test, 4)
    assert card.count("```text") == 3 and "huggingface-cli upload" in card and "load_state_dict" in card
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert config["library"] == "charnn" and config["vocab"] == list(model.vocab.chars)
    code, out, err = cli("sample", "--checkpoint", folder, "--seed", "The", "--length", "40", "--greedy")
    assert code == 0 and out == "The" + model.sample(seed="The", length=40, greedy=True) + "\n", err
    (tmp_path / "some.txt").write_text(TEXT[:500], encoding="utf-8")
    usage = card.split("```sh\n")[1].split("```")[0].replace("notes-lstm", str(folder))
    for line in usage.strip().splitlines():  # the card's own commands work
        code, out, err = cli(*shlex.split(line.replace("some.txt", str(tmp_path / "some.txt")))[1:])
        assert code == 0, (line, err)


def test_force_replaces_an_hf_export_but_never_another_folder(trained, tmp_path, cli):
    folder = tmp_path / "out"
    assert cli("export", trained, "--format", "hf", "-o", folder)[0] == 0
    code, out, err = cli("export", trained, "--format", "hf", "-o", folder)
    assert code == 1 and "exists" in err and "--force" in err
    assert cli("export", trained, "--format", "hf", "-o", folder, "--force")[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging or old folder left behind
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me", encoding="utf-8")
    code, out, err = cli("export", trained, "--format", "hf", "-o", mine, "--force")
    assert code == 1 and "not a charnn hf export" in err
    assert (mine / "notes.txt").read_text(encoding="utf-8") == "keep me"


# ---- bad input ----------------------------------------------------------------------------------------


@pytest.fixture
def checkpoint_file(tmp_path):
    path = tmp_path / "m.safetensors"
    charnn.export(random_model("gru"), path, format="safetensors")
    return path


def test_export_bad_inputs_are_one_line_errors(checkpoint_file, tmp_path, cli):
    cases = [
        (["--format", "webb", "-o", tmp_path / "x.html"], "unknown export format 'webb' (did you mean 'web'?)"),
        (["--format", "web", "--dtype", "float64", "-o", tmp_path / "x.html"], "unknown --dtype 'float64'"),
        (["--format", "web", "-o", tmp_path / "missing" / "x.html"], "does not exist"),
        (["--format", "web", "-o", checkpoint_file / "x.html"], "does not exist"),
        (["--format", "web", "-o", tmp_path], "exists: add --force"),
        (["--format", "web", "-o", tmp_path, "--force"], "is a folder; give a file path"),
    ]
    for args, message in cases:
        code, out, err = cli("export", checkpoint_file, *args)
        assert code == 1 and message in err, (args, err)
        assert_one_line_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_an_existing_output_is_kept_without_force_and_replaced_with_it(checkpoint_file, tmp_path, cli):
    target = tmp_path / "page.html"
    target.write_text("my page", encoding="utf-8")
    code, out, err = cli("export", checkpoint_file, "--format", "web", "-o", target)
    assert code == 1 and target.read_text(encoding="utf-8") == "my page"
    code, out, err = cli("export", checkpoint_file, "--format", "web", "-o", target, "--force")
    assert code == 0 and out.startswith(f"wrote {target}: web, float16 weights")
    assert "charnn-model" in target.read_text(encoding="utf-8")


def test_a_failed_export_leaves_nothing_half_written(checkpoint_file, tmp_path, monkeypatch):
    from charnn.formats import web

    target = tmp_path / "page.html"
    target.write_text("my page", encoding="utf-8")

    def broken(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the page is being made

    monkeypatch.setattr(web, "page", broken)
    with pytest.raises(KeyboardInterrupt):
        charnn.export(checkpoint_file, target, format="web", force=True)
    with pytest.raises(KeyboardInterrupt):
        charnn.export(checkpoint_file, tmp_path / "folder", format="hf")
    assert target.read_text(encoding="utf-8") == "my page"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors", "page.html"]


def test_not_a_checkpoint_is_refused(tmp_path, cli):
    (tmp_path / "notes.txt").write_text("just text", encoding="utf-8")
    code, out, err = cli("export", tmp_path / "notes.txt", "--format", "web", "-o", tmp_path / "x.html")
    assert code == 1 and "notes.txt" in err
    assert_one_line_error(err)
    assert not (tmp_path / "x.html").exists()


def _rewrite_header(path: Path, change) -> None:
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    change(header)
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])


def _hostile_cases():
    def shape(h):
        h["head.bias"]["shape"] = [10**9]

    def offsets(h):
        h["head.bias"]["data_offsets"] = [0, 10**12]

    def extra(h):
        h["evil"] = dict(h["head.bias"])

    def missing(h):
        del h["head.bias"]

    def dtype(h):
        h["head.bias"]["dtype"] = "F64"

    def foreign(h):
        del h["__metadata__"]

    def config(h):
        config = json.loads(h["__metadata__"]["config"])
        config["model"]["hidden_size"] = 10**9
        h["__metadata__"]["config"] = json.dumps(config)

    def layers(h):
        config = json.loads(h["__metadata__"]["config"])
        config["model"]["num_layers"] = 10**6
        h["__metadata__"]["config"] = json.dumps(config)

    def vocab(h):
        h["__metadata__"]["vocab"] = json.dumps(["ab"])

    def version(h):
        h["__metadata__"]["format_version"] = "99"

    return {"shape": (shape, "is not float32"), "offsets": (offsets, "byte range"), "extra": (extra, "unexpected"),
            "missing": (missing, "missing"), "dtype": (dtype, "is not float32"),
            "foreign": (foreign, "without charnn's metadata"), "config": (config, "needs more than its"),
            "layers": (layers, "more than it has tensors"), "vocab": (vocab, "damaged charnn metadata (vocab)"),
            "version": (version, "format version '99'")}


@pytest.mark.parametrize("case", list(_hostile_cases()))
def test_a_damaged_or_hostile_safetensors_file_is_refused(case, checkpoint_file, cli):
    change, message = _hostile_cases()[case]
    _rewrite_header(checkpoint_file, change)
    code, out, err = cli("sample", "--checkpoint", checkpoint_file, "--length", "5")
    assert code == 1 and message in err, err
    assert_one_line_error(err)


@pytest.mark.parametrize("keep", [0, 5, 100, 2000, -4])
def test_a_truncated_safetensors_file_is_refused_by_sample_eval_and_info(keep, checkpoint_file, cli):
    data = checkpoint_file.read_bytes()
    checkpoint_file.write_bytes(data[:keep] if keep >= 0 else data[:keep])
    for argv in (["sample", "--checkpoint", checkpoint_file], ["eval", "--checkpoint", checkpoint_file, "--split", "val"],
                 ["info", checkpoint_file]):
        code, out, err = cli(*argv)
        assert code == 1 and "truncated or corrupted" in err, (argv, err)
        assert_one_line_error(err)


def test_a_huge_announced_header_is_refused_before_it_is_read(checkpoint_file, cli):
    checkpoint_file.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    code, out, err = cli("info", checkpoint_file)
    assert code == 1 and "more than" in err
    assert_one_line_error(err)


def test_eval_and_info_take_the_export(checkpoint_file, cli):
    model = charnn.load(checkpoint_file)
    code, out, err = cli("eval", "--checkpoint", checkpoint_file, "--split", "val", "--json")
    assert code == 0, err
    assert json.loads(out)["nats_per_char"] == pytest.approx(model.score(split="val").nats_per_char)
    code, out, err = cli("info", checkpoint_file, "--json")
    assert code == 0 and json.loads(out)["format"] == "charnn-safetensors"


def test_export_defaults_to_the_most_recent_run_and_says_so(trained, tmp_path, monkeypatch, cli):
    monkeypatch.chdir(trained.parent.parent.parent)  # runs/notes/best.npz is the only run here
    code, out, err = cli("export", "--format", "safetensors", "-o", tmp_path / "m.safetensors")
    assert code == 0 and "using runs/notes/best.npz" in err
    assert os.path.getsize(tmp_path / "m.safetensors") == charnn.describe(tmp_path / "m.safetensors")["file_bytes"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc: a folder no one can write into")
@pytest.mark.parametrize("format, name", [("web", "x.html"), ("hf", "xhf")])
def test_an_unwritable_output_folder_is_a_one_line_error(format, name, checkpoint_file, cli):
    code, out, err = cli("export", checkpoint_file, "--format", format, "-o", Path("/proc") / name)
    assert code == 1 and "cannot write /proc/" in err and "give another output path" in err
    assert_one_line_error(err)
