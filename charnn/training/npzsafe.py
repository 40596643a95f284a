"""Reading an .npz archive that may come from a stranger: judge every size before reading data.

`Archive(path)` checks the zip structure alone: a bounded central directory, one entry per
name, stored or deflated members only, each local header agreeing with the central
directory, member data that neither overlaps nor leaves the file, and a total uncompressed
size that the file's own size can back (a decompression bomb claims far more than it holds).
`header(name)` then reads only a member's npy header; `read(name, header)` reads exactly the
bytes that header describes, CRC-checked. Nothing is allocated from a size the caller has
not first compared with what it expects. Problems raise ArchiveError, naming the member.
"""

from __future__ import annotations

import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAX_DIRECTORY_BYTES = 1 << 20  # ~10,000 members; zipfile parses the whole directory into objects
MAX_NPY_HEADER = 1 << 14  # numpy writes 128 bytes for a plain array; it refuses more than 10,000
EXPANSION_SLACK = 32 << 20  # a deflated archive may hold this much more than it stores ...
EXPANSION_FACTOR = 4  # ... plus this many times its own size (trained weights deflate ~1.1x)
CHUNK = 1 << 18

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_EOCD64_LOCATOR = struct.Struct("<4sLQL")
_EOCD64 = struct.Struct("<4sQ2H2L4Q")
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header
_MASK_ENCRYPTED, _MASK_DATA_DESCRIPTOR = 0x1, 0x8


class ArchiveError(Exception):
    """What is wrong with the archive, in a phrase that names the member; the caller adds the file."""


@dataclass(frozen=True)
class Header:
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran_order: bool
    offset: int  # bytes of npy magic and header before the array data

    @property
    def nbytes(self) -> int:
        return self.dtype.itemsize * _prod(self.shape)


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _directory(f, size: int) -> tuple[int, int]:
    """(offset, size) of the central directory, from the end record found as zipfile finds it."""
    tail_len = min(size, _EOCD.size + 0xFFFF)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = len(tail) - _EOCD.size
    if at < 0 or tail[at:at + 4] != b"PK\x05\x06" or tail[-2:] != b"\0\0":
        at = tail.rfind(b"PK\x05\x06")  # a comment follows the record
    if at < 0 or len(tail) - at < _EOCD.size:
        raise ArchiveError("not a zip archive")
    _, _, _, _, _, cd_size, cd_offset, _ = _EOCD.unpack_from(tail, at)
    end = size - tail_len + at
    locator = tail[max(0, at - _EOCD64_LOCATOR.size):at]
    if locator[:4] == b"PK\x06\x07" and len(locator) == _EOCD64_LOCATOR.size:
        # zip64: zipfile reads the record just before the locator; the locator must point there too
        end -= _EOCD64_LOCATOR.size + _EOCD64.size
        f.seek(max(0, end))
        record = f.read(_EOCD64.size)
        if end < 0 or record[:4] != b"PK\x06\x06" or _EOCD64_LOCATOR.unpack(locator)[2] != end:
            raise ArchiveError("its zip64 end record is missing or misplaced")
        cd_size, cd_offset = _EOCD64.unpack(record)[-2:]
    if cd_size > MAX_DIRECTORY_BYTES:
        raise ArchiveError(f"its zip directory is {cd_size:,} bytes (at most {MAX_DIRECTORY_BYTES:,} accepted)")
    if cd_offset + cd_size != end:
        raise ArchiveError("its zip directory is not where its end record says")
    return cd_offset, cd_size


def _local_extent(f, info: zipfile.ZipInfo) -> tuple[int, int]:
    """(start, end) of a member's data, after checking its local header against the directory."""
    name = repr(info.filename)
    f.seek(info.header_offset)
    raw = f.read(_LOCAL.size)
    if len(raw) < _LOCAL.size or raw[:4] != b"PK\x03\x04":
        raise ArchiveError(f"member {name} has no local header")
    _, _, flags, method, _, _, crc, csize, usize, nlen, elen = _LOCAL.unpack(raw)
    tail = f.read(nlen + elen)
    if tail[:nlen] != info.orig_filename.encode("utf-8" if flags & 0x800 else "cp437") or method != info.compress_type:
        raise ArchiveError(f"member {name}: local header and zip directory disagree")
    if not flags & _MASK_DATA_DESCRIPTOR:  # otherwise the local sizes are zero and only the directory has them
        if (usize, csize) == (0xFFFFFFFF, 0xFFFFFFFF):
            usize, csize = _zip64_sizes(tail[nlen:])
        if (crc, csize, usize) != (info.CRC, info.compress_size, info.file_size):
            raise ArchiveError(f"member {name}: local header and zip directory disagree on its size")
    start = info.header_offset + _LOCAL.size + nlen + elen
    return start, start + info.compress_size


def _zip64_sizes(extra: bytes) -> tuple[int, int]:
    while len(extra) >= 4:
        kind, size = struct.unpack_from("<2H", extra)
        if kind == 1 and size >= 16:
            return struct.unpack_from("<2Q", extra, 4)
        extra = extra[4 + size:]
    return -1, -1


class Archive:
    """An open .npz whose zip structure has been checked; use as a context manager."""

    def __init__(self, path: str | Path):
        self._file = open(path, "rb")
        try:
            self._zip, self._starts = self._check(self._file)
        except BaseException:
            self._file.close()
            raise

    @staticmethod
    def _check(f) -> tuple[zipfile.ZipFile, dict[str, int]]:
        size = f.seek(0, 2)
        cd_offset, _ = _directory(f, size)
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as e:
            raise ArchiveError(one_line(e)) from None
        infos = zf.infolist()
        seen = set()
        for info in infos:
            if info.filename in seen:
                raise ArchiveError(f"member {info.filename!r} appears twice")
            seen.add(info.filename)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & _MASK_ENCRYPTED:
                raise ArchiveError(f"member {info.filename!r} is encrypted or compressed with an unsupported method")
            if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
                raise ArchiveError(f"member {info.filename!r} is stored but its sizes differ")
        starts, end = {}, 0
        for info in sorted(infos, key=lambda i: i.header_offset):
            if info.header_offset < end:
                raise ArchiveError(f"member {info.filename!r} overlaps the one before it")
            starts[info.filename], end = _local_extent(f, info)
            if end > cd_offset:
                raise ArchiveError(f"member {info.filename!r} runs into the zip directory")
        _check_expansion(infos, size)
        return zf, starts

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()
        self._file.close()

    @property
    def names(self) -> list[str]:
        return self._zip.namelist()

    def size(self, name: str) -> int:
        """Uncompressed size of a member, as the zip directory states it."""
        return self._zip.getinfo(name).file_size

    def header(self, name: str) -> Header:
        """The member's npy header, read without touching its data."""
        try:
            with self._zip.open(name) as f:
                version = np.lib.format.read_magic(f)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"npy format version {version}")
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                shape, fortran_order, dtype = read(f, max_header_size=MAX_NPY_HEADER)
                return Header(dtype, tuple(shape), bool(fortran_order), f.tell())
        except (EOFError, OSError, zipfile.BadZipFile, zlib.error) as e:  # a small member is read whole
            raise ArchiveError(f"member {name!r} is damaged ({one_line(e)})") from None
        except (ValueError, TypeError, SyntaxError) as e:
            raise ArchiveError(f"member {name!r} has no readable npy header ({one_line(e)})") from None

    def read(self, name: str, header: Header) -> np.ndarray:
        """The member's array as `header` describes it (C order); the member must be exactly that long."""
        if header.fortran_order or self.size(name) != header.offset + header.nbytes:
            raise ArchiveError(f"member {name!r} is not the C-order array its header describes")
        array = np.empty(header.shape, header.dtype)
        flat = array.reshape(-1).view(np.uint8)
        info = self._zip.getinfo(name)
        try:
            if info.compress_type == zipfile.ZIP_STORED:
                crc = self._read_stored(info, header.offset, flat)
            else:
                crc = self._read_deflated(info, header.offset, flat)
        except (EOFError, OSError, zipfile.BadZipFile, zlib.error) as e:
            raise ArchiveError(f"member {name!r} is damaged ({one_line(e)})") from None
        if crc != info.CRC:
            raise ArchiveError(f"member {name!r} is damaged (bad CRC-32)")
        return array

    def _read_stored(self, info: zipfile.ZipInfo, offset: int, out: np.ndarray) -> int:
        """Straight from the file into the array: one copy fewer than going through zipfile."""
        self._file.seek(self._starts[info.filename])
        head = self._file.read(offset)
        if len(head) != offset:
            raise EOFError("ends early")
        crc = zlib.crc32(head)
        for start in range(0, out.size, CHUNK):  # the CRC reads each chunk while it is still in cache
            part = out[start:start + CHUNK]
            if self._file.readinto(part) != part.size:
                raise EOFError("ends early")
            crc = zlib.crc32(part, crc)
        return crc

    def _read_deflated(self, info: zipfile.ZipInfo, offset: int, out: np.ndarray) -> int:
        with self._zip.open(info) as f:
            crc = zlib.crc32(f.read(offset))
            done = 0
            while done < out.size:  # in chunks that stay in cache, as np.load reads
                chunk = f.read(min(CHUNK, out.size - done))
                if not chunk:
                    raise EOFError("ends early")
                out[done:done + len(chunk)] = np.frombuffer(chunk, np.uint8)
                crc = zlib.crc32(chunk, crc)
                done += len(chunk)
        return crc


def _check_expansion(infos: list[zipfile.ZipInfo], file_size: int) -> None:
    """Refuse members that would inflate to far more than the file holds (a decompression bomb)."""
    allowed = EXPANSION_SLACK + EXPANSION_FACTOR * file_size
    total = 0
    for info in infos:
        total += info.file_size
        if total > allowed:
            raise ArchiveError(
                f"member {info.filename!r} inflates {info.compress_size:,} bytes to {info.file_size:,} "
                f"(more than a {file_size:,}-byte file may expand to)"
            )


def one_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
