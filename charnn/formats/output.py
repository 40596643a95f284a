"""Where an export goes: the checks on the output path, and writes that never leave half a file
or half a folder behind (a temporary beside the target, renamed into place when complete)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from charnn.errors import CharnnError, ParameterError
from charnn.files import replaced_atomically, umask

HF_MARKER = "charnn"  # config.json's "library" in an hf export: what --force may replace


def check_target(path: Path, folder: bool, force: bool) -> None:
    """Refuse an output that cannot be written, or that exists without force (and, with force, a
    folder that is not an earlier hf export, or a folder where a file goes)."""
    parent = path.absolute().parent
    if not parent.is_dir():
        raise CharnnError(f"cannot write {path}: the folder {parent} does not exist; create it or give another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise CharnnError(f"cannot write {path}: the folder {parent} is not writable; give another output path")
    if not (path.exists() or path.is_symlink()):
        return
    if not force:
        raise ParameterError("{out} exists: add {force} to replace it, or give another path", out=str(path))
    if folder and not path.is_dir():
        raise CharnnError(f"{path} is a file, and the hf format writes a folder; give another path")
    if not folder and path.is_dir():
        raise CharnnError(f"{path} is a folder; give a file path")
    if folder and any(path.iterdir()) and not _is_hf_export(path):
        raise CharnnError(f"{path} is a folder that is not a charnn hf export, and --force replaces only those; "
                          "give a new folder")


def _is_hf_export(path: Path) -> bool:
    try:
        return json.loads((path / "config.json").read_text(encoding="utf-8")).get("library") == HF_MARKER
    except (OSError, ValueError, AttributeError):
        return False


def write_file(path: Path, content: bytes) -> None:
    """`content` at `path`, in one rename."""
    with _written(path):
        with replaced_atomically(path, "wb") as f:
            f.write(content)


@contextmanager
def _written(path: Path):
    """A file-system error while writing `path` as a one-line CharnnError."""
    try:
        yield
    except OSError as e:
        raise CharnnError(f"cannot write {path}: {e.strerror or e}; give another output path") from None


def write_folder(path: Path, fill: Callable[[Path], None]) -> None:
    """A folder made complete by `fill(folder)` in a temporary beside `path`, then renamed to it;
    an earlier folder at `path` (force) is moved aside first and removed once the new one is in place."""
    with _written(path):
        _write_folder(path, fill)


def _write_folder(path: Path, fill: Callable[[Path], None]) -> None:
    parent = path.absolute().parent
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent))
    old = None
    try:
        os.chmod(staging, 0o777 & ~umask())
        fill(staging)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=parent))
            os.replace(path, old / "previous")
        os.replace(staging, path)
    except BaseException:
        if old is not None and (old / "previous").exists() and not path.exists():
            os.replace(old / "previous", path)  # put the earlier export back
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def size_of(path: Path) -> int:
    """Bytes of a file, or of every file in a folder."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size
