"""Writing files so that a reader or a crash never sees half of one."""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@functools.cache
def umask() -> int:
    """The process's umask, read once: from /proc (Linux), else by setting and restoring it (the
    only portable way, which a thread creating a file at that moment could notice)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def replaced_atomically(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """A file object that replaces `path` in one rename when the block ends (flushed and fsynced);
    on an error the previous file is untouched and no temporary file is left."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_text_atomically(path: str | Path, text: str) -> None:
    with replaced_atomically(path) as f:
        f.write(text)
