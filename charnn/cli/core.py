"""What every command shares: the Typer apps, one-line errors, the checkpoint a command picked.

Commands (train_commands.py, inspect_commands.py, data_commands.py, sweep_command.py) register
on these apps; app.py gathers them and runs the command line.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from charnn import __version__
from charnn.errors import CharnnError


def _reflowed(text: str | None) -> str | None:
    """A docstring's paragraphs each on one line, so help text reflows to the terminal."""
    if not text:
        return text
    doc = inspect.cleandoc(text)
    return "\n\n".join(" ".join(p.split("\n")) for p in doc.split("\n\n"))


def _metavars_only(params) -> None:
    """Help shows each option's metavar (N, PATH, KEY=VALUE) where typer would print its Python type
    (<int>, <path>), and nothing for flags and arguments: set on these parameters, not on typer."""
    for param in params:
        if isinstance(param, TyperOption):
            param.display_type_rich = functools.partial(lambda metavar, ctx: metavar or None, param.metavar)
        elif isinstance(param, TyperArgument):
            param.display_type_rich = lambda ctx: None


class Command(TyperCommand):
    """A command with metavars in its help and its docstring's paragraphs reflowed."""

    def __init__(self, *args, **kwargs):
        kwargs["help"] = _reflowed(kwargs.get("help"))
        super().__init__(*args, **kwargs)

    def get_params(self, ctx):  # --help is added here, after __init__
        params = super().get_params(ctx)
        _metavars_only(params)
        return params


class Group(TyperGroup):
    """A group of commands (charnn, charnn data, charnn experiment) with metavars in its own help."""

    def get_params(self, ctx):  # with --help, --install-completion and --show-completion, added late
        params = super().get_params(ctx)
        _metavars_only(params)
        return params


# How the command line spells the parameters the library's errors name (charnn.errors.ParameterError):
# its flags where a message names one, and the words it has always used in the others.
FLAGS = {"greedy": "--greedy", "top_k": "--top-k", "top_p": "--top-p", "steps": "--steps", "windows": "--windows", "units": "--units",
         "text_chars": "--text-chars", "init_std": "--init-std", "segment_len": "--segment-len",
         "dynamic_lr": "--dynamic-lr", "dynamic_decay": "--dynamic-decay", "lag": "--lag", "subsets": "--subsets",
         "cells": "--cells", "minutes": "--minutes", "text": "--text", "text_file": "a TEXT_FILE",
         "split": "--split train|val|test", "source": "CONFIG", "data": "--data FILE", "dynamic": "--dynamic",
         "out": "--out", "context": "--context", "resume": "--resume", "force": "--force", "run_dir": "--run-dir",
         "run_name": "--set run.name=...", "resume_dir": "charnn train --resume RUN_DIR",
         "bytes_encoding": "--set data.encoding=bytes", "checkpoint": "--checkpoint PATH",
         "kernels": "--kernels", "kernels_fast": "--kernels fast", "kernels_numpy": "--kernels numpy"}


def command(typer_app: typer.Typer, name: str | None = None, spelling: dict | None = None):
    """Register a command on typer_app with charnn's Command class and one-line errors; `spelling`
    adds this command's own names for parameters (synth's --length, report's --text FILE)."""
    names = {**FLAGS, **(spelling or {})}

    def register(function):
        return typer_app.command(name, cls=Command)(friendly(function, names))

    return register


app = typer.Typer(
    name="charnn",
    help="Train character-level recurrent language models with NumPy, sample from them, "
    "and watch their gradients through time.\n\n"
    "Example: charnn train --data story.txt && charnn sample",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=Group,
)
data_app = typer.Typer(help="Prepare corpora ahead of training, or write synthetic ones.", no_args_is_help=True,
                       cls=Group)
experiment_app = typer.Typer(help="The notes' claims as measurements: tables, CSV and figures.", no_args_is_help=True,
                             cls=Group)
app.add_typer(data_app, name="data")
app.add_typer(experiment_app, name="experiment")

EXIT_INTERRUPTED = 130
FLAG = ""  # the metavar of an on/off option: nothing to show after the flag's name
SET_HELP = ("Override config keys: --set train.lr=3e-3 model.hidden_size=256 (several after one --set, "
            "or repeat --set).")


def friendly(command, names: dict | None = None):
    """Turn project errors into one line on stderr and a non-zero exit, never a traceback; a
    parameter error names the parameter as the command line spells it (`names`)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from charnn.cli.display import print_error, print_hint
        from charnn.errors import ParameterError
        from charnn.errors import TrainingInterrupted, TrainingStopped

        try:
            return command(*args, **kwargs)
        except ParameterError as e:
            print_error(e.render(lambda name: (names or FLAGS).get(name, name)))
            raise typer.Exit(1) from None
        except TrainingStopped as e:
            print_error(str(e))
            if e.hint:
                print_hint(e.hint)
            raise typer.Exit(EXIT_INTERRUPTED if isinstance(e, TrainingInterrupted) else 1) from None
        except CharnnError as e:
            print_error(str(e))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # e.g. `charnn sample | head`: the reader has gone, which is fine
            # stdout's buffer can no longer be flushed: point it at /dev/null so exit stays quiet
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
        except OSError as e:  # a file system problem the library did not anticipate
            print_error(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "))
            raise typer.Exit(1) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charnn {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, metavar=FLAG,
                                 help="Print the version and exit."),
) -> None:
    """charnn: character-level RNN language models in NumPy."""


def map_rare(vocab, text: str, name: str) -> str:
    """Map characters the model never saw to its rare-character symbol, if it has one, and say so."""
    text, count = vocab.map_rare(text)
    note_mapped(count, name)
    return text


def note_mapped(count: int, name: str) -> None:
    from charnn.cli.display import stderr_console

    if count:
        are = "characters of {} are" if count != 1 else "character of {} is"
        stderr_console().print(f"note: {count} {are.format(name)} outside the vocabulary and were mapped to "
                               "U+FFFD, as training mapped rare ones (data.min_char_count)", markup=False)


class Picked:
    """The checkpoint a command uses: the one given, or the most recent run's best.npz. When it was
    picked here, `say()` names it in one stderr line; commands call it once their input is checked,
    so an error stays one line (and names the checkpoint itself when it is about it)."""

    def __init__(self, path: Optional[Path], other: str = "--checkpoint PATH"):
        from charnn import api
        from charnn.errors import ParameterError

        self.given = path is not None
        self.other = other
        try:
            self.path = path if path is not None else api.runs.most_recent()
        except ParameterError as e:  # none to pick: say how this command takes one
            raise CharnnError(e.render(lambda name: other if name == "checkpoint" else FLAGS.get(name, name))) from None

    def say(self) -> None:
        if self.given:
            return
        from charnn import api
        from charnn.cli.display import print_used

        print_used(self.path, api.describe(self.path)["val_loss"], other=self.other)
        self.given = True  # once


CHECKPOINT_HELP = "Checkpoint file (default: best.npz of the most recently written run under ./runs)."
