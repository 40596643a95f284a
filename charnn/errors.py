"""The one exception type the library raises for problems a user can fix."""

import contextlib


class CharnnError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""


@contextlib.contextmanager
def file_errors(what: str, fix: str):
    """Turn a file-system error inside the block into a one-line CharnnError."""
    try:
        yield
    except OSError as e:
        raise CharnnError(f"cannot {what}: {e.strerror or e}; {fix}") from None
