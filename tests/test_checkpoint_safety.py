"""Checkpoints from strangers: hostile files are refused from their headers, cheaply, by every
command that reads a checkpoint; valid format-1 files still load and give the same results.

The hostile files are written byte by byte (a small zip writer below), starting from the
format-1 fixture tests/fixtures/v1-rnn.npz.
"""

import functools
import io
import json
import shutil
import struct
import subprocess
import sys
import textwrap
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from charnn.training import checkpoint
from charnn.nn import model
from charnn.training import npzsafe
from charnn.cli.app import main
from charnn.errors import CharnnError
from charnn.nn.optim import OptimizerSpec, init_state

FIXTURES = Path(__file__).parent / "fixtures"
BASE = FIXTURES / "v1-rnn.npz"  # 2 layers of 8 units, V = 48, adamw, batch 4
MiB = 1 << 20


# ---- writing zip files member by member ------------------------------------------------------


def write_zip(path: Path, members: list[tuple]) -> Path:
    """members: (name, payload as stored, method, uncompressed size, crc), in file order."""
    out, central = bytearray(), bytearray()
    for name, payload, method, size, crc in members:
        raw = name.encode()
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0, crc, len(payload), size,
                               len(raw), 0, 0, 0, 0, 0, len(out)) + raw
        out += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0, crc, len(payload), size, len(raw), 0)
        out += raw + payload
    out += central + struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(central), len(out), 0)
    path.write_bytes(out)
    return path


def stored(name: str, data: bytes) -> tuple:
    return name, data, zipfile.ZIP_STORED, len(data), zlib.crc32(data)


def npy_bytes(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return buf.getvalue()


def npy_header(dtype, shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


@functools.lru_cache(maxsize=None)
def zeros_bomb(header: bytes, mib: int) -> tuple:
    """A deflated npy member: `header`, then `mib` MiB of zeros, in about mib KiB.

    After a full flush every MiB of zeros deflates to the same bytes, so the stream is built
    by repetition in milliseconds. Its CRC is left 0: the loader must refuse it from sizes alone.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = bytes(MiB)
    first = c.compress(header) + c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    repeat = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    payload = first + repeat * (mib - 1) + c.flush()
    return payload, zipfile.ZIP_DEFLATED, len(header) + mib * MiB, 0


def base_members() -> dict[str, bytes]:
    with zipfile.ZipFile(BASE) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def meta_bytes(change) -> bytes:
    meta = checkpoint.load(BASE).meta
    change(meta)
    return npy_bytes(np.array(json.dumps(meta)))


def hostile(kind: str, path: Path) -> Path:
    """Write the hostile variant `kind` of the base checkpoint to `path`."""
    members = base_members()
    entries = {name: stored(name, data) for name, data in members.items()}
    if kind == "bomb":  # head.b_y: ~2 MB of deflated zeros claiming 2 GiB
        entries["head.b_y.npy"] = ("head.b_y.npy", *zeros_bomb(npy_header("<f4", (512 * MiB,)), 2048))
    elif kind == "oversized":  # within what the file could back, but not what the config describes
        entries["head.b_y.npy"] = ("head.b_y.npy", *zeros_bomb(npy_header("<f4", (8 * MiB,)), 32))
    elif kind == "shape":  # same byte count as (8, 8), another shape
        entries["rnn.0.W_hh.npy"] = stored("rnn.0.W_hh.npy", npy_bytes(np.zeros((4, 16), np.float32)))
    elif kind == "dtype":
        entries["head.b_y.npy"] = stored("head.b_y.npy", npy_bytes(np.zeros(24, np.float64)))
    elif kind == "fortran":
        entries["head.W_hy.npy"] = stored("head.W_hy.npy", npy_bytes(np.zeros((48, 8), np.float32).T))
    elif kind == "extra":
        entries["evil.npy"] = stored("evil.npy", npy_bytes(np.zeros(3)))
    elif kind == "missing":
        del entries["optim.t.npy"]
    elif kind == "meta_not_json":
        entries["meta.npy"] = stored("meta.npy", npy_bytes(np.array("{this is not json")))
    elif kind == "meta_huge":  # 20 MiB of text (within what the file may inflate to, beyond meta's limit)
        entries["meta.npy"] = ("meta.npy", *zeros_bomb(npy_header(f"<U{5 * MiB}", ()), 20))
    elif kind == "meta_lies":  # a config claiming a huge model: nothing is allocated for it
        entries["meta.npy"] = stored("meta.npy", meta_bytes(lambda m: m["config"]["model"].update(hidden_size=10**9)))
    elif kind == "duplicate":
        rows = list(entries.values()) + [stored("head.b_y.npy", npy_bytes(np.zeros(10**6, np.float32)))]
        return write_zip(path, rows)
    elif kind == "directory_huge":  # 30,000 empty members: zipfile would build an object for each
        rows = list(entries.values()) + [stored(f"x{i}.npy", b"") for i in range(30_000)]
        return write_zip(path, rows)
    elif kind == "local_header":  # the local header claims other sizes than the zip directory
        write_zip(path, list(entries.values()))
        data = bytearray(path.read_bytes())
        at = data.index(b"head.b_y.npy") - 30  # the name's first occurrence follows its local header
        struct.pack_into("<2L", data, at + 18, 10**9, 10**9)
        path.write_bytes(bytes(data))
        return path
    else:
        raise ValueError(kind)
    return write_zip(path, list(entries.values()))


HOSTILE = {  # kind -> what the one-line error says
    "bomb": "inflates",
    "oversized": "'head.b_y.npy' is 33,554,560 bytes, its config needs float32 (48,)",
    "shape": "'rnn.0.W_hh.npy' holds float32 (4, 16), its config needs float32 (8, 8)",
    "dtype": "'head.b_y.npy' holds float64 (24,), its config needs float32 (48,)",
    "fortran": "Fortran order",
    "extra": "unexpected member 'evil.npy'",
    "missing": "'optim.t.npy' is missing",
    "meta_not_json": "unreadable meta",
    "meta_huge": "unreadable meta: 20,971,648 bytes",
    "meta_lies": "'rnn.0.W_xh.npy' is",
    "duplicate": "'head.b_y.npy' appears twice",
    "local_header": "local header and zip directory disagree",
    "directory_huge": "its zip directory is 1,670,668 bytes (at most 1,048,576 accepted)",
}


# ---- the shared loader: refused, with the member named, in small memory and time --------------


@pytest.mark.parametrize("kind", HOSTILE)
def test_loader_refuses_hostile_files(tmp_path, kind):
    path = hostile(kind, tmp_path / f"{kind}.npz")
    with pytest.raises(CharnnError) as e:
        checkpoint.load(path)
    message = str(e.value)
    assert HOSTILE[kind] in message and "\n" not in message
    with pytest.raises(CharnnError):
        checkpoint.inspect(path)


PROBE = textwrap.dedent("""
    import json, sys
    from charnn.training import checkpoint
    from charnn.errors import CharnnError

    def peak_mb():
        # VmHWM: this process's own peak resident memory. ru_maxrss would also count the pytest
        # process that started it (Linux carries the parent's peak across fork and exec).
        status = dict(line.split(":", 1) for line in open("/proc/self/status"))
        return int(status["VmHWM"].split()[0]) / 1024

    def bytes_read():  # rchar: every byte this process's read() calls returned, cache or disk
        return int(dict(line.split(":", 1) for line in open("/proc/self/io"))["rchar"])

    results = []
    for path in sys.argv[1:]:
        before = bytes_read()
        try:
            checkpoint.load(path)
            outcome = "loaded"
        except CharnnError as e:
            outcome = str(e)
        results.append({"outcome": outcome, "read_bytes": bytes_read() - before, "peak_mb": peak_mb()})
    print(json.dumps(results))
""")


def test_refusals_take_little_memory_and_reading_in_a_fresh_process(tmp_path):
    """One process loads every hostile file in turn; its peak after each file bounds that file's,
    and what it read (counted by the kernel, not timed) shows no file is read more than once over."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc/self/status (Linux)")
    paths = [hostile(kind, tmp_path / f"{kind}.npz") for kind in HOSTILE]
    proc = subprocess.run([sys.executable, "-c", PROBE, *map(str, paths)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    for kind, result in zip(HOSTILE, json.loads(proc.stdout)):
        assert HOSTILE[kind] in result["outcome"], (kind, result)
        # the whole process, interpreter and numpy included, under 200 MB; each refusal reads at most
        # the file once and never more than the few MiB of directory and headers it may judge
        size = (tmp_path / f"{kind}.npz").stat().st_size
        assert result["peak_mb"] < 200 and result["read_bytes"] <= min(size, 4 << 20) + 65536, (kind, result, size)


def test_sample_command_refuses_the_bomb_in_small_memory(tmp_path):
    """The whole CLI (typer, rich) around the loader, in a fresh process."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc/self/status (Linux)")
    path = hostile("bomb", tmp_path / "bomb.npz")
    script = ("import sys\nfrom charnn.cli.app import main\ncode = main(['sample', '--checkpoint', sys.argv[1]])\n"
              "status = dict(line.split(':', 1) for line in open('/proc/self/status'))\n"
              "print(code, int(status['VmHWM'].split()[0]) / 1024)")
    proc = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    code, peak_mb = proc.stdout.split()
    assert code == "1" and "inflates" in proc.stderr and float(peak_mb) < 200, (proc.stdout, proc.stderr)


def test_decompression_bomb_within_the_file_budget_is_still_refused_by_size(tmp_path):
    """Expansion alone is bounded by the file's size; beyond that, sizes must match the config."""
    path = hostile("oversized", tmp_path / "o.npz")
    with npzsafe.Archive(path) as archive:  # the zip itself is acceptable ...
        assert archive.size("head.b_y.npy") > 32 * MiB
    with pytest.raises(CharnnError, match="its config needs"):  # ... the checkpoint is not
        checkpoint.load(path)


def saved_checkpoint(path: Path, hidden: int) -> Path:
    """A valid checkpoint like the base one, with `hidden` units (members over 4 KiB are read in two passes)."""
    base = checkpoint.load(BASE)
    meta = json.loads(json.dumps(base.meta))
    meta["config"]["model"]["hidden_size"] = hidden
    params = model.init_params(48, hidden, 2, rng=np.random.default_rng(0))
    state = model.zero_state(params, meta["config"]["train"]["batch_size"], "rnn")
    checkpoint.save(path, checkpoint.Checkpoint(params, meta, init_state(OptimizerSpec(optimizer="adamw"), params), state))
    return path


@pytest.mark.parametrize("hidden", [8, 40])
def test_damaged_array_data_is_refused_by_its_crc(tmp_path, hidden):
    with zipfile.ZipFile(saved_checkpoint(tmp_path / "ok.npz", hidden)) as zf:
        rows = [stored(name, zf.read(name)) for name in zf.namelist()]
    name, data, method, size, crc = next(r for r in rows if r[0] == "head.W_hy.npy")
    flipped = bytearray(data)
    flipped[-5] ^= 0xFF
    rows = [(name, bytes(flipped), method, size, crc) if r[0] == name else r for r in rows]
    with pytest.raises(CharnnError, match="'head.W_hy.npy' is damaged"):
        checkpoint.load(write_zip(tmp_path / "crc.npz", rows))


# ---- every command that reads a checkpoint goes through that loader ---------------------------

CORPUS = "the cat sat on the mat. the dog sat on the log. " * 8


@pytest.fixture
def entry_points(tmp_path, monkeypatch):
    """argv builders for each way a checkpoint is read, with np.load made unusable."""

    def no_np_load(*args, **kwargs):
        raise AssertionError("np.load reads array data before checking headers")

    monkeypatch.setattr(np, "load", no_np_load)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(CORPUS)
    (tmp_path / "c.yaml").write_text("data:\n  path: corpus.txt\nmodel:\n  hidden_size: 8\n"
                                     "train:\n  batch_size: 2\n  seq_len: 8\n  steps: 3\n")

    def resume(f):
        (tmp_path / "run").mkdir(exist_ok=True)
        shutil.copy(f, tmp_path / "run" / "latest.npz")
        return ["train", "c.yaml", "--resume", "--run-dir", "run", "-q"]

    return {
        "sample": lambda f: ["sample", "--checkpoint", f],
        "eval": lambda f: ["eval", "corpus.txt", "--checkpoint", f, "--json"],
        "inspect-gradients": lambda f: ["inspect-gradients", "--checkpoint", f, "--text", "the cat sat"],
        "train --resume": resume,
        "run.init_from": lambda f: ["train", "c.yaml", "--set", f"run.init_from={f}", "--run-dir", "fresh", "-q"],
        "info": lambda f: ["info", f],
    }


ENTRY_POINTS = ["sample", "eval", "inspect-gradients", "train --resume", "run.init_from", "info"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("kind", HOSTILE)
def test_every_command_refuses_hostile_files_in_one_line(tmp_path, capsys, entry_points, entry, kind):
    path = hostile(kind, tmp_path / f"{kind}.npz")
    code = main([str(a) for a in entry_points[entry](path)])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and HOSTILE[kind] in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err
    assert not (tmp_path / "fresh").exists() or not any((tmp_path / "fresh").glob("*.npz"))


# ---- valid checkpoints --------------------------------------------------------------------------


# (tests/test_compat.py checks that they evaluate and sample as the version that wrote them did)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_new_loader_reads_exactly_what_np_load_reads(cell):
    path = FIXTURES / f"v1-{cell}.npz"
    ckpt = checkpoint.load(path)
    with np.load(path, allow_pickle=False) as npz:
        reference = {k: npz[k] for k in npz.files if k != "meta"}
    ours = dict(ckpt.params)
    ours.update({f"optim.{k}": v for k, v in ckpt.optim_state.items()})
    ours.update({f"state.{i}": h for i, h in enumerate(ckpt.hidden)})
    assert ours.keys() == reference.keys()
    for key, value in reference.items():
        assert ours[key].dtype == value.dtype and ours[key].shape == value.shape
        np.testing.assert_array_equal(ours[key], value)


def test_compressed_copy_of_a_checkpoint_still_loads(tmp_path):
    with np.load(BASE, allow_pickle=False) as npz:
        np.savez_compressed(tmp_path / "z.npz", **{k: npz[k] for k in npz.files})
    a, b = checkpoint.load(BASE), checkpoint.load(tmp_path / "z.npz")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_zip64_end_records_are_followed(tmp_path, monkeypatch):
    """Checkpoints over 4 GiB (or 65,535 members) end with zip64 records; read one made small."""
    monkeypatch.setattr(zipfile, "ZIP_FILECOUNT_LIMIT", 1)  # makes zipfile write the zip64 end records
    path = saved_checkpoint(tmp_path / "z64.npz", 8)
    assert b"PK\x06\x06" in path.read_bytes()[-200:]
    assert checkpoint.load(path).meta["step"] == 30


def test_a_member_that_is_not_an_array_is_named(tmp_path):
    rows = [stored(n, d) for n, d in base_members().items()] + [stored("notes.txt", b"hello")]
    with pytest.raises(CharnnError, match="unexpected member 'notes.txt';"):
        checkpoint.load(write_zip(tmp_path / "n.npz", rows))


def test_save_refuses_metadata_that_load_would_refuse(tmp_path):
    ckpt = checkpoint.load(BASE)
    ckpt.meta["history"] = [{"step": i, "val_loss": 1.0} for i in range(checkpoint.MAX_META_CHARS // 20)]
    with pytest.raises(CharnnError, match="run.eval_every"):
        checkpoint.save(tmp_path / "c.npz", ckpt)
    assert not list(tmp_path.iterdir())


def test_info_reads_headers_and_meta_only(capsys, monkeypatch):
    read = npzsafe.Archive.read
    touched = []

    def spy(self, name, header):
        touched.append(name)
        return read(self, name, header)

    monkeypatch.setattr(npzsafe.Archive, "read", spy)
    code = main(["info", str(FIXTURES / "v1-lstm.npz"), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert touched == ["meta.npy"]
    info = json.loads(out)
    assert info["format_version"] == 1 and info["charnn_version"] == "0.1.0" and info["cell"] == "lstm"
    assert (info["vocab_size"], info["hidden_size"], info["num_layers"]) == (48, 8, 2)
    assert info["step"] == 30 and info["chars_seen"] == 30 * 4 * 8
    params = checkpoint.load(FIXTURES / "v1-lstm.npz").params
    assert info["parameters"] == sum(p.size for p in params.values())
    assert len(info["vocabulary"]) == 48 and info["config"]["model"]["cell"] == "lstm"
    assert info["best_val_loss"] == pytest.approx(3.8345, abs=1e-4)


def test_info_table(capsys):
    code = main(["info", str(FIXTURES / "v1-gru.npz")])
    out, _ = capsys.readouterr()
    assert code == 0 and "characters seen" in out and "960" in out and "model.hidden_size" in out


def test_info_help_has_an_example(capsys):
    code = main(["info", "--help"])
    assert code == 0 and "Example: charnn info" in capsys.readouterr().out
