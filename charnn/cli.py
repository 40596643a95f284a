"""The `charnn` command line: a thin Typer layer over the library.

Each command parses its arguments, calls one library function and renders the result.
A CharnnError becomes a one-line message on stderr and exit code 1; a usage error, exit 2.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, UsageError

from charnn import __version__, checkpoint
from charnn.errors import CharnnError

app = typer.Typer(
    name="charnn",
    help="Train character-level recurrent language models with NumPy, sample from them, "
    "and watch their gradients through time.\n\n"
    "Example: charnn train configs/hello.yaml && charnn sample --seed h",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_INTERRUPTED = 130


def _friendly(command):
    """Turn project errors into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from charnn.display import print_error
        from charnn.train import TrainingInterrupted

        try:
            return command(*args, **kwargs)
        except TrainingInterrupted as e:
            print_error(str(e))
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except CharnnError as e:
            print_error(str(e))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            print_error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except BrokenPipeError:  # e.g. `charnn sample | head`: the reader has gone, which is fine
            sys.stderr.close()
            raise typer.Exit(0) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charnn {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """charnn: character-level RNN language models in NumPy."""


def _load_checkpoint(path: Optional[Path]):
    return checkpoint.load(path if path is not None else checkpoint.most_recent())


@app.command()
@_friendly
def train(
    config: Path = typer.Argument(..., help="YAML experiment config (see configs/)."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key, e.g. --set train.lr=3e-3 (repeatable)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run from its latest.npz, exactly."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run directory (default: <run.dir>/<run.name>)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing run directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the final summary."),
) -> None:
    """Train a model from a YAML config.

    Writes config.yaml, metrics.jsonl, latest.npz and best.npz into the run directory.
    Ctrl-C saves latest.npz; continue with --resume.

    Example: charnn train configs/hello.yaml --set train.steps=500
    """
    from charnn.config import load_config
    from charnn.display import TrainProgress, stderr_console, summary_table
    from charnn.train import train as run_training

    cfg = load_config(config, set_)
    console = stderr_console()
    progress = TrainProgress(console, quiet=quiet)
    try:
        result = run_training(cfg, run_dir, resume=resume, force=force, callback=progress)
    finally:
        progress.close()
    console.print(summary_table(result))
    console.print(f"sample from it with: charnn sample --checkpoint {result.run_dir / 'best.npz'}")


@app.command()
@_friendly
def sample(
    seed: str = typer.Option("", "--seed", "-s", help="Priming text the sample continues (printed first)."),
    checkpoint_path: Optional[Path] = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint to sample from (default: best.npz of the most recent run in runs/)."
    ),
    length: Optional[int] = typer.Option(None, "--length", "-n", help="Characters to generate (default: the config's sample.length)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t", help="Softmax temperature > 0; lower is more conservative."),
    top_k_given: Optional[int] = typer.Option(None, "--top-k", help="Sample only among the k likeliest characters."),
    greedy: bool = typer.Option(False, "--greedy", help="Always take the likeliest character (deterministic)."),
    rng_seed: Optional[int] = typer.Option(None, "--rng-seed", help="Seed of the random generator, for repeatable samples."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, help="How many samples to print, separated by blank lines."),
) -> None:
    """Generate text from a trained model; only the text goes to stdout.

    --seed is the priming text, not the random seed (that is --rng-seed).

    Example: charnn sample --seed h --greedy
    """
    from charnn.sample import generate
    from charnn.vocab import Vocab

    ckpt = _load_checkpoint(checkpoint_path)
    defaults = ckpt.config.get("sample", {})
    length = defaults.get("length", 200) if length is None else length
    temperature = defaults.get("temperature", 1.0) if temperature is None else temperature
    top_k = defaults.get("top_k", 0) if top_k_given is None else top_k_given
    if top_k_given is not None and top_k_given < 1:
        raise CharnnError(f"--top-k must be >= 1 (got {top_k_given})")
    vocab = Vocab(tuple(ckpt.vocab_chars))
    rng = np.random.default_rng(rng_seed)
    out = sys.stdout
    stream = out.isatty()  # a terminal sees text as it is made; a pipe gets whole samples
    for i in range(num_samples):
        chars = generate(ckpt.params, vocab, seed, length, temperature=temperature, top_k=top_k, greedy=greedy, rng=rng)
        out.write(seed)
        if stream:
            for ch in chars:
                out.write(ch)
                out.flush()
        else:
            out.write("".join(chars))
        out.write("\n\n" if i < num_samples - 1 else "\n")
    out.flush()


@app.command("eval")
@_friendly
def eval_(
    text_file: Path = typer.Argument(..., help="UTF-8 text to score."),
    checkpoint_path: Optional[Path] = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint to evaluate (default: best.npz of the most recent run in runs/)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
) -> None:
    """Score a text: mean -ln p(c_i | c_0..c_{i-1}) over i >= 1, from a zero state.

    Reports nats/char, bits/char and perplexity.

    Example: charnn eval data/hello.txt --json
    """
    from rich.console import Console

    from charnn.corpus import read_text_file
    from charnn.display import eval_table
    from charnn.evaluate import evaluate_ids
    from charnn.vocab import Vocab

    ckpt = _load_checkpoint(checkpoint_path)
    text = read_text_file(text_file)
    vocab = Vocab(tuple(ckpt.vocab_chars))
    unknown = vocab.unknown_chars(text)
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise CharnnError(f"{text_file} has {len(unknown)} characters outside the model's vocabulary: {shown}")
    result = evaluate_ids(ckpt.params, vocab.encode(text)).as_dict()
    if as_json:
        typer.echo(json.dumps(result))
    else:
        Console(highlight=False).print(eval_table(str(text_file), result))


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; returns the exit code. Usage errors are one line and exit 2."""
    from charnn.display import print_error

    try:
        code = app(args=argv, prog_name="charnn", standalone_mode=False)
    except UsageError as e:
        hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
        print_error(f"{e.format_message()}{hint}")
        return 2
    except typer.Abort:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except ClickException as e:
        print_error(e.format_message())
        return e.exit_code
    return code if isinstance(code, int) else 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
