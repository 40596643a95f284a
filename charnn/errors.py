"""The exceptions the library raises for problems a user can fix; all derive from CharnnError.

A message is one line that names the problem and the fix. A `ParameterError` names a function
parameter; it keeps its template, so a front end can say the same thing in its own words (the
command line names --top-k where Python names top_k).
"""

from __future__ import annotations

import contextlib
import string
from collections.abc import Callable


class CharnnError(Exception):
    """A user-facing error: its message says in one line what is wrong and how to fix it (the CLI
    prints it and exits non-zero). Every error the library raises derives from it.

    Examples:
        >>> try:
        ...     charnn.load("no-such-file.npz")
        ... except charnn.CharnnError as e:
        ...     print(type(e).__name__, "-", str(e).split(";")[0])
        CharnnError - checkpoint no-such-file.npz not found
    """


class ParameterError(CharnnError, ValueError):
    """A bad argument, e.g. `temperature must be > 0 (got 0); use greedy=True for the likeliest text`.

    The template's fields are either given values (`got=0`) or parameter names (`{temperature}`,
    `{greedy}`), which `render` spells with a naming function: Python's names by default.
    """

    # how Python calls for a flag-like parameter, or names a config key given through load_config
    PYTHON = {"greedy": "greedy=True", "dynamic": "dynamic=True", "resume": "resume=True", "force": "force=True",
              "run_name": "another run.name", "resume_dir": "charnn.train(RUN_DIR, resume=True)",
              "bytes_encoding": "data.encoding: bytes", "checkpoint": "the path of a .npz file",
              "kernels_fast": "kernels='fast'", "kernels_numpy": "kernels='numpy'"}

    def __init__(self, template: str, **values):
        self.template, self.values = template, values
        super().__init__(self.render())

    def parameters(self) -> list[str]:
        """The parameter names the message mentions."""
        fields = (name for _, name, _, _ in string.Formatter().parse(self.template) if name)
        return [name for name in fields if name not in self.values]

    def render(self, spell: Callable[[str], str] | None = None) -> str:
        """The message with each parameter spelled by `spell` (default: as Python calls it)."""
        spell = spell or (lambda name: self.PYTHON.get(name, name))
        return self.template.format(**{name: spell(name) for name in self.parameters()}, **self.values)


class TrainingStopped(CharnnError):
    """A run that ended early; `result` says how far it got, `hint` what to do next."""

    def __init__(self, message: str, result=None, hint: str | None = None):
        super().__init__(message)
        self.result, self.hint = result, hint


class TrainingInterrupted(TrainingStopped):
    """Ctrl-C: latest.npz was saved at a step boundary and the run can be resumed."""


class TrainingDiverged(TrainingStopped):
    """The loss became NaN, infinite or ran away; no checkpoint of the bad parameters was written."""


@contextlib.contextmanager
def file_errors(what: str, fix: str):
    """Turn a file-system error inside the block into a one-line CharnnError."""
    try:
        yield
    except OSError as e:
        raise CharnnError(f"cannot {what}: {e.strerror or e}; {fix}") from None
