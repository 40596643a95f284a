"""Streaming corpus preparation, the id cache, and batched evaluation."""

import contextlib
import errno
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from charnn.data import prepare
from charnn.config import DataConfig
from charnn.errors import CharnnError
from charnn.data.vocab import Vocab


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(prepare, "BLOCK_BYTES", 7)  # force many blocks and split characters


def make(tmp_path, content: bytes, **kw):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    return DataConfig(path=str(path), **kw)


def test_streamed_ids_equal_in_memory_encoding(tmp_path, small_blocks):
    text = "héllo wörld — ∑ 🙂 ok\n" * 50
    logs = []
    got = prepare.prepare(make(tmp_path, text.encode()), tmp_path / "cache", logs.append)
    vocab = Vocab.from_text(text)
    assert got.vocab == vocab
    np.testing.assert_array_equal(np.asarray(got.ids), vocab.encode(text))
    assert got.ids.dtype == np.uint8 and isinstance(got.ids, np.memmap) and not got.reused
    assert int(got.counts[vocab.chars.index("o")]) == text.count("o")
    again = prepare.prepare(make(tmp_path, text.encode()), tmp_path / "cache", logs.append)
    assert again.reused and "reusing" in logs[-1]


def test_changed_source_rebuilds(tmp_path):
    prepare.prepare(make(tmp_path, b"abcabc"), tmp_path / "cache")
    logs = []
    got = prepare.prepare(make(tmp_path, b"xyzxyz"), tmp_path / "cache", logs.append)
    assert not got.reused and "source has changed" in logs[0]
    assert got.vocab.chars == ("x", "y", "z")


@pytest.mark.parametrize("damage, why", [("truncate", "truncated"), ("flip", "corrupted")])
def test_damaged_cache_is_rebuilt_never_used(tmp_path, damage, why):
    data = make(tmp_path, b"abcabcabc")
    first = prepare.prepare(data, tmp_path / "cache")
    ids_path = first.cache_dir / "ids.uint8"
    del first
    raw = ids_path.read_bytes()
    ids_path.write_bytes(raw[:-2] if damage == "truncate" else bytes([raw[0] ^ 1]) + raw[1:])
    logs = []
    got = prepare.prepare(data, tmp_path / "cache", logs.append)
    assert why in logs[0] and not got.reused
    np.testing.assert_array_equal(np.asarray(got.ids), [0, 1, 2] * 3)


def test_invalid_utf8_gives_byte_offset_and_hint(tmp_path, small_blocks):
    content = "ab€cd".encode() + b"\xff" + b"tail"
    with pytest.raises(CharnnError, match=r"byte offset 7.*data.encoding: bytes"):
        prepare.prepare(make(tmp_path, content), tmp_path / "cache")


def test_binary_file_is_named_as_such(tmp_path):
    with pytest.raises(CharnnError, match="looks binary .*byte offset 3"):
        prepare.prepare(make(tmp_path, b"abc\x00def"), tmp_path / "cache")


def test_empty_file(tmp_path):
    with pytest.raises(CharnnError, match="is empty"):
        prepare.prepare(make(tmp_path, b""), tmp_path / "cache")


def test_bytes_mode_has_256_symbols_and_reads_anything(tmp_path):
    content = bytes([0, 255, 10, 200, 0])
    got = prepare.prepare(make(tmp_path, content, encoding="bytes"), tmp_path / "cache")
    assert got.vocab.size == 256
    np.testing.assert_array_equal(np.asarray(got.ids), list(content))


def test_min_char_count_maps_rare_characters_to_one_symbol(tmp_path):
    got = prepare.prepare(make(tmp_path, "aaaabbbbxyz".encode(), min_char_count=2), tmp_path / "cache")
    assert got.vocab.chars == ("a", "b", prepare.REPLACEMENT)
    assert got.replaced == 3 and got.replaced_distinct == 3
    np.testing.assert_array_equal(np.asarray(got.ids)[-3:], [2, 2, 2])


def test_too_many_distinct_characters_suggests_min_char_count(tmp_path, monkeypatch):
    monkeypatch.setattr(prepare, "MAX_VOCAB", 3)
    with pytest.raises(CharnnError, match="4 distinct characters.*min_char_count"):
        prepare.prepare(make(tmp_path, b"abcd"), tmp_path / "cache")


def test_disk_full_leaves_no_partial_cache(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(prepare, "_write_ids", full)
    with pytest.raises(CharnnError, match="No space left on device.*nothing partial was kept"):
        prepare.prepare(make(tmp_path, b"abcabc"), tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [f".{prepare._cache_key(make(tmp_path, b''))}.lock"]


@pytest.mark.parametrize("err, fix", [
    (errno.EACCES, "make it writable"), (errno.ENOENT, "missing or is a file"), (errno.ENOSPC, "free some disk space"),
])
def test_a_cache_that_cannot_be_written_names_the_real_cause(tmp_path, monkeypatch, err, fix):
    def fail(*args, **kwargs):
        raise OSError(err, os.strerror(err), str(tmp_path / "cache"))

    monkeypatch.setattr(prepare.tempfile, "mkdtemp", fail)
    with pytest.raises(CharnnError, match=fix) as caught:
        prepare.prepare(make(tmp_path, b"abcabc"), tmp_path / "cache")
    assert (err == errno.ENOSPC) == ("disk space" in str(caught.value))


def test_run_dir_under_a_file_is_named(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CharnnError, match="cannot write the prepared ids.*Not a directory.*check run.dir"):
        prepare.prepare(make(tmp_path, b"abcabc"), tmp_path / "file" / "cache")


def test_a_builder_that_loses_the_race_uses_the_winners_cache(tmp_path, monkeypatch):
    """Another process publishes the same cache while this one is still writing its own."""
    data = make(tmp_path, b"abcabcabc")
    real_write = prepare._write_ids
    monkeypatch.setattr(prepare, "_build_lock", lambda root, key: contextlib.nullcontext())

    def write_while_another_process_publishes(*args):
        monkeypatch.setattr(prepare, "_write_ids", real_write)
        winner = prepare.prepare(data, tmp_path / "cache")  # the other process, start to finish
        assert not winner.reused
        return real_write(*args)

    monkeypatch.setattr(prepare, "_write_ids", write_while_another_process_publishes)
    got = prepare.prepare(data, tmp_path / "cache")
    np.testing.assert_array_equal(np.asarray(got.ids), [0, 1, 2] * 3)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")) == [got.cache_dir.name]


def test_a_stale_cache_is_replaced_while_a_reader_keeps_its_ids(tmp_path):
    old = prepare.prepare(make(tmp_path, b"abcabc"), tmp_path / "cache")
    new = prepare.prepare(make(tmp_path, b"xyzxyzxyz"), tmp_path / "cache")
    np.testing.assert_array_equal(np.asarray(old.ids), [0, 1, 2] * 2)  # still readable after the swap
    np.testing.assert_array_equal(np.asarray(new.ids), [0, 1, 2] * 3)
    assert new.vocab.chars == ("x", "y", "z")
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith((".stale", ".build"))]


def test_five_processes_preparing_one_fresh_corpus_at_once(tmp_path):
    """Five processes (a sweep, make -j, two terminals) start on the same fresh corpus."""
    rng = np.random.default_rng(0)
    text = "".join(rng.choice(list("abcdefgh \n"), 3_000_000))
    (tmp_path / "big.txt").write_text(text)
    (tmp_path / "c.yaml").write_text(f"data:\n  path: big.txt\nrun:\n  dir: {tmp_path / 'runs'}\n")
    cmd = [sys.executable, "-m", "charnn", "data", "prepare", str(tmp_path / "c.yaml"), "--json"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(5)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    summaries = [json.loads(out) for _, out, _ in results]
    assert {s["chars"] for s in summaries} == {len(text)} and len({s["cache"] for s in summaries}) == 1
    leftovers = [p.name for p in (tmp_path / "runs" / ".cache").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == [Path(summaries[0]["cache"]).name]


def test_inline_text_needs_no_cache(tmp_path):
    got = prepare.prepare(DataConfig(text="hello"), tmp_path / "cache")
    assert got.cache_dir is None and got.vocab.chars == ("e", "h", "l", "o")
    assert not (tmp_path / "cache").exists()


def test_a_build_left_by_a_killed_process_is_removed(tmp_path):
    """kill -9 while building: the next build on this machine removes the dead process's folder."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root = tmp_path / "cache"
    root.mkdir()
    left = root / f".build-0123456789abcdef-{socket.gethostname()}-{dead.pid}-x1y2z3"
    left.mkdir()
    (left / "ids.uint8").write_bytes(b"\0" * 10)
    live = root / f".build-fedcba9876543210-{socket.gethostname()}-{os.getpid()}-a1b2c3"
    live.mkdir()
    prepare.prepare(make(tmp_path, b"abcabc"), root)
    assert not left.exists() and live.exists()
