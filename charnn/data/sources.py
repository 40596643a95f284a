"""Reading a corpus: a UTF-8 file, inline text, or a URL verified by sha256 and cached."""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.request
from pathlib import Path

from charnn.errors import CharnnError


def cache_dir() -> Path:
    """Where downloads are kept: $CHARNN_CACHE, else $XDG_CACHE_HOME/charnn, else ~/.cache/charnn."""
    if os.environ.get("CHARNN_CACHE"):
        return Path(os.environ["CHARNN_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "charnn"


def decode_utf8(data: bytes, name: str) -> str:
    """Decode strictly; binary or non-UTF-8 input is an error giving the byte offset."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CharnnError(
            f"{name} is not valid UTF-8 (bad byte 0x{data[e.start]:02x} at byte offset {e.start}); "
            "give a UTF-8 text file"
        ) from None
    if "\x00" in text:
        offset = len(text[: text.index("\x00")].encode("utf-8"))
        raise CharnnError(f"{name} looks binary (NUL byte at byte offset {offset}); give a UTF-8 text file")
    return text


def text_file_bytes(path: str | Path) -> bytes:
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CharnnError(f"text file {path} not found; check the path") from None
    except IsADirectoryError:
        raise CharnnError(f"{path} is a directory; give a text file") from None
    except OSError as e:
        raise CharnnError(f"cannot read {path}: {e.strerror}") from None


def read_text_file(path: str | Path) -> str:
    return decode_utf8(text_file_bytes(path), str(path))


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


DOWNLOAD_TIMEOUT_S = 15.0  # to connect, and for each read: a host that accepts but never answers is an error
PROGRESS_EVERY_S = 2.0


def fetch(url: str, sha256: str, directory: Path | None = None, log=lambda message: None) -> Path:
    """Download `url` once into the cache, verify its checksum, and return the cached path.

    A file whose checksum does not match is deleted, never kept or used. A long download
    reports its progress through `log` every few seconds.
    """
    directory = directory or cache_dir()
    sha256 = sha256.strip().lower()
    target = directory / f"{sha256[:16]}-{Path(url).name or 'download'}"
    try:
        if target.exists() and sha256_of(target) == sha256:
            return target
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".download-")
    except OSError as e:
        raise CharnnError(f"cannot use the download cache {directory}: {e.strerror or e}; set CHARNN_CACHE") from None
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            _copy_with_progress(response, out, url, log)
        got = sha256_of(Path(tmp))
        if got != sha256:
            raise CharnnError(
                f"download of {url} has sha256 {got}, expected {sha256}; the file was not kept. "
                "Check data.sha256, or download the file yourself and set data.path"
            )
        os.replace(tmp, target)
    except (OSError, ValueError, http.client.HTTPException) as e:
        why = getattr(e, "reason", None) or e
        if isinstance(why, TimeoutError) or isinstance(e, TimeoutError):
            why = f"no answer within {DOWNLOAD_TIMEOUT_S:g} s"
        raise CharnnError(
            f"cannot download {url}: {why}; "
            "download it yourself and set data.path (e.g. --set data.path=FILE)"
        ) from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


def _copy_with_progress(response, out, url: str, log) -> None:
    total = response.headers.get("Content-Length")
    total = int(total) if total and total.isdigit() else None
    done, last_report = 0, time.monotonic()
    for block in iter(lambda: response.read(1 << 20), b""):
        out.write(block)
        done += len(block)
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            of = f" of {total / 1e6:.1f} MB ({100 * done / total:.0f}%)" if total else " MB"
            log(f"downloading {url}: {done / 1e6:.1f}{of}")
