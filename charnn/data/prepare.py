"""Preparing a corpus of any size: stream it in blocks, build the vocabulary, store the ids once.

The ids go to a cache folder (uint8 when the vocabulary fits, else uint16) with a JSON
description: the vocabulary, the source's sha256, and a checksum of the ids themselves.
Training and evaluation read the ids through np.memmap, so a corpus of hundreds of
megabytes never sits in memory as a Python string. Peak memory is a few blocks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from charnn.config import DataConfig
from charnn.data.sources import fetch
from charnn.errors import CharnnError, ParameterError
from charnn.procs import alive
from charnn.data.vocab import REPLACEMENT, Vocab

BLOCK_BYTES = 1 << 22  # 4 MiB per read: bincount's int64 temporaries stay small
MAX_VOCAB = 65535
CACHE_FORMAT, CACHE_VERSION = "charnn-ids", 1


@dataclass(frozen=True)
class PreparedCorpus:
    vocab: Vocab
    ids: np.ndarray  # all ids, a read-only memmap (or an in-memory array for inline text)
    counts: np.ndarray  # occurrences of each vocabulary id
    replaced: int  # characters mapped to REPLACEMENT because they were rare
    replaced_distinct: int
    source: str
    source_sha256: str  # of the source's bytes: a checkpoint records it to recognise its corpus later
    cache_dir: Path | None
    reused: bool  # True when an existing cache was read instead of built


# ---- reading blocks --------------------------------------------------------------------------


def _utf8_safe_cut(block: bytes) -> int:
    """Length of the longest prefix of `block` that does not end inside a UTF-8 sequence."""
    for back in range(1, min(4, len(block)) + 1):
        byte = block[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII): does its sequence fit?
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(block) if need <= back else len(block) - back
    return len(block)


def _blocks(stream: io.BufferedIOBase, utf8: bool) -> Iterator[tuple[int, bytes]]:
    """(byte offset, block) pairs; in utf-8 mode no block splits a character."""
    offset, carry = 0, b""
    while True:
        data = stream.read(BLOCK_BYTES)
        if not data:
            break
        block = carry + data
        cut = _utf8_safe_cut(block) if utf8 else len(block)
        yield offset, block[:cut]
        offset += cut
        carry = block[cut:]
    if carry:
        yield offset, carry  # an incomplete sequence at the very end: decoding reports it


# What to do about binary input, then about another encoding. A training text can be read as
# bytes ({bytes_encoding}: the command line spells it --set data.encoding=bytes); a trained model
# reads text as it was trained, so for it no setting can help.
ICONV = "e.g. iconv -f latin1 -t utf-8 FILE > FILE.utf8"
TRAINING_FIX = ("give a UTF-8 text file, or train on its raw bytes with {bytes_encoding}",
                f"convert it to UTF-8 ({ICONV}), or train on its raw bytes with {{bytes_encoding}}")
SCORING_FIX = ("this model reads UTF-8 text; give a UTF-8 text file",
               f"this model reads UTF-8 text; convert the file, {ICONV}")
EMPTY = "{name} is empty; give a text of at least 2 characters"  # training and scoring alike


def _symbols(block: bytes, offset: int, name: str, utf8: bool, fix: tuple[str, str] = TRAINING_FIX) -> np.ndarray:
    """Code points of one block of UTF-8 (or its bytes in bytes mode); errors give the byte offset
    and `fix` (what to do about binary input, about other encodings)."""
    if not utf8:
        return np.frombuffer(block, np.uint8)
    nul = block.find(b"\x00")  # in UTF-8 a zero byte is only ever the NUL character
    if nul >= 0:
        raise ParameterError("{name} looks binary (NUL byte at byte offset {at}); " + fix[0],
                             name=name, at=offset + nul)
    if block.isascii():
        return np.frombuffer(block, np.uint8)
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParameterError("{name} is not valid UTF-8 (bad byte 0x{byte:02x} at byte offset {at}); " + fix[1],
                             name=name, byte=block[e.start], at=offset + e.start) from None
    return np.frombuffer(text.encode("utf-32-le"), "<u4")


# ---- the source ------------------------------------------------------------------------------


def _open_source(data: DataConfig, log=lambda message: None) -> tuple[Callable[[], io.BufferedIOBase], str, Path | None]:
    """(opener, display name, file path or None for inline text)."""
    if data.text is not None:
        raw = data.text.encode("utf-8")
        return (lambda: io.BytesIO(raw)), "data.text", None
    path = Path(data.path) if data.path is not None else fetch(data.url, data.sha256, log=log)
    name = data.path if data.path is not None else data.url
    if not path.exists():
        raise CharnnError(f"text file {path} not found; check data.path")
    if path.is_dir():
        raise CharnnError(f"{path} is a directory; give a text file")

    def opener():
        try:
            return open(path, "rb")
        except OSError as e:
            raise CharnnError(f"cannot read {path}: {e.strerror}") from None

    return opener, name, path


def _sha256(opener) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with opener() as f:
        for block in iter(lambda: f.read(BLOCK_BYTES), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


# ---- building ----------------------------------------------------------------------------------


def _count(opener, name: str, utf8: bool) -> np.ndarray:
    """Occurrences of every code point (or byte) in the source, in one streaming pass."""
    counts = np.zeros(0x110000 if utf8 else 256, np.int64)
    with opener() as f:
        for offset, block in _blocks(f, utf8):
            codes = _symbols(block, offset, name, utf8)
            found = np.bincount(codes)
            counts[: len(found)] += found
    return counts


def _vocabulary(counts: np.ndarray, min_count: int, utf8: bool, name: str):
    """(vocab, lookup table code point -> id, replaced occurrences, replaced distinct)."""
    if not utf8:  # bytes mode: always the full 256-symbol vocabulary, ids are the bytes
        return Vocab(tuple(chr(b) for b in range(256))), np.arange(256, dtype=np.uint16), 0, 0
    present = np.flatnonzero(counts)
    rare = present[counts[present] < min_count] if min_count > 1 else present[:0]
    keep = np.setdiff1d(present, rare)
    chars = {chr(c) for c in keep} | ({REPLACEMENT} if rare.size else set())
    if not chars:
        raise CharnnError(
            f"{name}: every character occurs fewer than data.min_char_count = {min_count} times; lower it"
        )
    if len(chars) > MAX_VOCAB:
        raise CharnnError(
            f"{name} has {len(chars):,} distinct characters, more than {MAX_VOCAB:,}; set data.min_char_count "
            "(e.g. 2 or 5) to map rare characters to one symbol"
        )
    vocab = Vocab(tuple(sorted(chars)))
    lookup = np.zeros(int(present.max()) + 1, np.uint16)
    code_of = np.frombuffer("".join(vocab.chars).encode("utf-32-le"), "<u4")
    lookup[code_of[code_of < len(lookup)]] = np.flatnonzero(code_of < len(lookup))
    if rare.size:
        lookup[rare] = vocab.chars.index(REPLACEMENT)
    return vocab, lookup, int(counts[rare].sum()), int(rare.size)


def _write_ids(opener, name: str, utf8: bool, lookup: np.ndarray, dtype, out_path: Path, vocab_size: int):
    """Encode block by block into out_path; returns (ids written, their blake2b, count per id)."""
    n, digest, counts = 0, hashlib.blake2b(digest_size=16), np.zeros(vocab_size, np.int64)
    with opener() as f, open(out_path, "wb") as out:
        for offset, block in _blocks(f, utf8):
            codes = _symbols(block, offset, name, utf8)
            ids = lookup[codes].astype(dtype, copy=False)
            counts += np.bincount(ids, minlength=vocab_size)
            data = ids.tobytes()
            out.write(data)
            digest.update(data)
            n += len(ids)
        out.flush()
        os.fsync(out.fileno())
    return n, digest.hexdigest(), counts


def _cache_key(data: DataConfig) -> str:
    ident = json.dumps([data.path, data.url, data.text is not None, data.encoding, data.min_char_count])
    return hashlib.sha256(ident.encode()).hexdigest()[:16]


def _load_cache(folder: Path, source_sha: str, data: DataConfig) -> tuple[dict | None, np.ndarray | None, str]:
    """(description, ids) of the cache in `folder` if it is complete and matches the source, else (None, None, why).

    The ids are checked and mapped through one open file, so a cache that another process
    replaces or deletes meanwhile cannot change what this one reads.
    """
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None, None, "no cache yet"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != CACHE_FORMAT or meta.get("version") != CACHE_VERSION:
            return None, None, "cache from another charnn version"
        if meta["source_sha256"] != source_sha:
            return None, None, "the source has changed"
        if (meta["encoding"], meta["min_char_count"]) != (data.encoding, data.min_char_count):
            return None, None, "data.encoding or data.min_char_count changed"
        with open(folder / meta["ids_file"], "rb") as f:
            if os.fstat(f.fileno()).st_size != meta["count"] * np.dtype(meta["dtype"]).itemsize:
                return None, None, "the cached ids are truncated"
            digest = hashlib.blake2b(digest_size=16)
            for block in iter(lambda: f.read(BLOCK_BYTES), b""):
                digest.update(block)
            if digest.hexdigest() != meta["ids_blake2b"]:
                return None, None, "the cached ids are corrupted"
            ids = np.memmap(f, dtype=meta["dtype"], mode="r", shape=(meta["count"],))
    except FileNotFoundError:
        return None, None, "the cached ids are missing"
    except (OSError, ValueError, KeyError, TypeError):
        return None, None, "the cache description is unreadable"
    return meta, ids, "reused"


def prepare(data: DataConfig, cache_root: str | Path, log: Callable[[str], None] = lambda message: None) -> PreparedCorpus:
    """Build (or reuse) the id cache for a data config under cache_root and open it.

    Safe for many processes at once, on one machine or on a shared file system: a cache is
    built in a private folder and published by one atomic rename, so a reader only ever sees
    a complete cache, and when several processes build the same cache the first to publish
    wins and the others use its cache.
    """
    opener, name, _ = _open_source(data, log)
    utf8 = data.encoding == "utf-8"
    if data.text is not None:  # inline text is tiny: no cache, everything in memory
        return _prepare_inline(opener, name, utf8, data)
    source_sha, size = _sha256(opener)
    if size == 0:
        raise CharnnError(EMPTY.format(name=name))
    root = Path(cache_root)
    key = _cache_key(data)
    folder = root / key
    meta, ids, why = _load_cache(folder, source_sha, data)
    reused = meta is not None
    if not reused:
        with _writing_cache(root), _build_lock(root, key):
            meta, ids, why = _load_cache(folder, source_sha, data)  # another process may have built it meanwhile
            reused = meta is not None
            if not reused:
                _remove_dead_builds(root)
                log(f"preparing {name} ({why}): writing ids to {folder}")
                meta, ids = _build(opener, name, utf8, data, source_sha, root, key)
    if reused:
        log(f"reusing the prepared ids in {folder}")
    return PreparedCorpus(Vocab(tuple(meta["vocab"])), ids, np.array(meta["counts"], np.int64), meta["replaced"],
                          meta["replaced_distinct"], name, source_sha, folder, reused)


def _prepare_inline(opener, name: str, utf8: bool, data: DataConfig) -> PreparedCorpus:
    counts_all = _count(opener, name, utf8)
    vocab, lookup, replaced, distinct = _vocabulary(counts_all, data.min_char_count, utf8, name)
    with opener() as f:
        block = f.read()
    codes = _symbols(block, 0, name, utf8)
    ids = lookup[codes].astype(np.uint8 if vocab.size <= 256 else np.uint16)
    if ids.size == 0:
        raise CharnnError(EMPTY.format(name=name))
    counts = np.bincount(ids, minlength=vocab.size)
    return PreparedCorpus(vocab, ids, counts, replaced, distinct, name, hashlib.sha256(block).hexdigest(), None, False)


@contextlib.contextmanager
def _writing_cache(root: Path):
    """Turn a file-system error while building into one line that names the real cause."""
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            fix = "free some disk space or point run.dir at a disk with room"
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            fix = "make it writable, or point run.dir at a folder you can write (--set run.dir=DIR)"
        elif e.errno in (errno.ENOENT, errno.ENOTDIR):
            fix = "a folder on the way is missing or is a file; check run.dir (--set run.dir=DIR)"
        else:
            fix = "point run.dir at another folder (--set run.dir=DIR)"
        where = f" ({e.filename})" if e.filename else ""
        raise CharnnError(f"cannot write the prepared ids under {root}{where}: {e.strerror or e}; {fix} "
                          "(nothing partial was kept)") from None


@contextlib.contextmanager
def _build_lock(root: Path, key: str):
    """Hold an advisory lock while building, so processes on one machine build a cache once.

    Only an economy: correctness comes from publishing by rename, so where the file system
    cannot lock (some network mounts) the build goes on without it.
    """
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{key}.lock", "a+b") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
        except OSError:
            pass
        yield


def _build(opener, name: str, utf8: bool, data: DataConfig, source_sha: str, root: Path, key: str):
    """Write the cache into a private folder, then publish it as root/key; returns (meta, ids)."""
    counts_all = _count(opener, name, utf8)
    vocab, lookup, replaced, distinct = _vocabulary(counts_all, data.min_char_count, utf8, name)
    dtype = np.dtype(np.uint8 if vocab.size <= 256 else np.uint16)
    ids_file = f"ids.{dtype.name}"
    root.mkdir(parents=True, exist_ok=True)
    private = Path(tempfile.mkdtemp(dir=root, prefix=f".build-{key}-{socket.gethostname()}-{os.getpid()}-"))
    try:
        count, digest, counts = _write_ids(opener, name, utf8, lookup, dtype, private / ids_file, vocab.size)
        meta = {
            "format": CACHE_FORMAT, "version": CACHE_VERSION, "source": name, "source_sha256": source_sha,
            "encoding": data.encoding, "min_char_count": data.min_char_count, "vocab": list(vocab.chars),
            "dtype": dtype.name, "count": count, "ids_file": ids_file, "ids_blake2b": digest,
            "replaced": replaced, "replaced_distinct": distinct, "counts": counts.tolist(),
        }
        with open(private / "meta.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(meta, ensure_ascii=False))
            f.flush()
            os.fsync(f.fileno())
        return _publish(private, root / key, source_sha, data)
    finally:
        shutil.rmtree(private, ignore_errors=True)  # gone already when it was published


def _remove_dead_builds(root: Path) -> None:
    """Private build folders of processes on this machine that were killed (kill -9, power cut)."""
    host = socket.gethostname()
    for folder in root.glob(f".build-*-{host}-*-*"):
        pid = folder.name.rsplit("-", 2)[-2]
        if pid.isdigit() and not alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _publish(private: Path, folder: Path, source_sha: str, data: DataConfig):
    """Rename the private folder to `folder`; if another process published first, use its cache."""
    for _ in range(8):
        try:
            os.rename(private, folder)  # atomic; fails when folder exists and is not empty
        except OSError as e:
            if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
        else:
            _fsync_dir(folder.parent)
            meta, ids, why = _load_cache(folder, source_sha, data)
            if meta is None:
                raise CharnnError(f"the cache {folder} was replaced while being published ({why}); "
                                  "is the source file changing? Run again once it is complete")
            return meta, ids
        meta, ids, _ = _load_cache(folder, source_sha, data)
        if meta is not None:
            return meta, ids  # another process won the race with the same cache
        # a stale cache (older source, damaged): move it aside in one step, then try again
        aside = folder.with_name(f".stale-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            os.rename(folder, aside)
            shutil.rmtree(aside, ignore_errors=True)  # readers that opened its ids keep them
    raise OSError(errno.EBUSY, "other processes keep replacing the cache", str(folder))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)  # make the rename itself durable
    finally:
        os.close(fd)


# ---- encoding a text with a trained model's vocabulary ----------------------------------------


@dataclass(frozen=True)
class EncodedText:
    ids: np.ndarray  # a read-only memmap
    replaced: int  # characters outside the vocabulary mapped to REPLACEMENT


def encode_file(path: str | Path, vocab: Vocab, encoding: str, folder: str | Path,
                model: str = "the model") -> EncodedText:
    """Encode a text file with an existing vocabulary, block by block, into folder/ids.

    Memory stays a few blocks whatever the file's size. Characters outside the vocabulary
    map to REPLACEMENT when the vocabulary has it (as training mapped rare ones), else they
    are an error that lists them.
    """
    path = Path(path)
    if path.is_dir():
        raise CharnnError(f"{path} is a directory; give a text file")
    utf8 = encoding == "utf-8"
    codes_of_vocab = np.frombuffer("".join(vocab.chars).encode("utf-32-le"), "<u4")
    # code point -> id, with vocab.size for "unknown"; its last entry is unknown and every byte value fits
    table = np.full(max(int(codes_of_vocab.max()) + 2, 257), vocab.size, np.uint32)
    table[codes_of_vocab] = np.arange(vocab.size)
    replacement = vocab.chars.index(REPLACEMENT) if REPLACEMENT in vocab.chars else None
    dtype = np.dtype(np.uint8 if vocab.size <= 256 else np.uint16)
    out_path, unknown, replaced, count = Path(folder) / f"ids.{dtype.name}", set(), 0, 0
    try:
        with open(path, "rb") as f, open(out_path, "wb") as out:
            for offset, block in _blocks(f, utf8):
                codes = _symbols(block, offset, str(path), utf8, SCORING_FIX)
                ids = table[codes] if codes.dtype == np.uint8 else table[np.minimum(codes, np.uint32(len(table) - 1))]
                bad = ids == vocab.size
                if bad.any():
                    if replacement is None:
                        unknown.update(np.unique(codes[bad]).tolist())
                    ids[bad] = replacement if replacement is not None else 0
                    replaced += int(bad.sum())
                out.write(ids.astype(dtype).tobytes())
                count += len(ids)
    except FileNotFoundError:
        raise CharnnError(f"text file {path} not found; check the path") from None
    except OSError as e:
        raise CharnnError(f"cannot encode {path} for evaluation: {e.strerror or e} ({e.filename})") from None
    if unknown:
        shown = ", ".join(repr(chr(c)) for c in sorted(unknown)[:10]) + (" ..." if len(unknown) > 10 else "")
        raise CharnnError(f"{path} has {len(unknown)} character{'s' * (len(unknown) != 1)} outside the model's vocabulary: {shown} "
                          f"(the model is {model}, {vocab.describe()})")
    if count == 0:
        raise CharnnError(EMPTY.format(name=path))
    return EncodedText(np.memmap(out_path, dtype=dtype, mode="r", shape=(count,)), replaced)
