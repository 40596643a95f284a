"""The one exception type the library raises for problems a user can fix."""


class CharnnError(Exception):
    """A user-facing error: the CLI prints its message as one line and exits non-zero."""
