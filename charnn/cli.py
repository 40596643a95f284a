"""The `charnn` command line: a thin Typer layer over the library.

Each command parses its arguments, calls one library function and renders the result.
A CharnnError becomes a one-line message on stderr and exit code 1; a usage error, exit 2.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, UsageError

from charnn import __version__, checkpoint, model
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
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """charnn: character-level RNN language models in NumPy."""


def _map_rare(vocab, text: str, name: str) -> str:
    """Map characters the model never saw to its rare-character symbol, if it has one, and say so."""
    from charnn.display import stderr_console

    text, count = vocab.map_rare(text)
    if count:
        stderr_console().print(f"note: {count} characters of {name} are outside the vocabulary and were mapped to "
                               "U+FFFD, as training mapped rare ones (data.min_char_count)", markup=False)
    return text


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
    console.print(f"sample from it with: charnn sample --checkpoint {result.run_dir / 'best.npz'}", markup=False)


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
    rng_seed: Optional[int] = typer.Option(None, "--rng-seed", min=0, help="Seed of the random generator, for repeatable samples."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, help="How many samples to print, separated by blank lines."),
) -> None:
    """Generate text from a trained model; only the text goes to stdout.

    --seed is the priming text, not the random seed (that is --rng-seed).

    Example: charnn sample --seed h --greedy
    """
    from charnn.sample import generate
    from charnn.vocab import Vocab, from_symbols, to_symbols

    ckpt = _load_checkpoint(checkpoint_path)
    defaults = ckpt.config.get("sample", {})
    length = defaults.get("length", 200) if length is None else length
    temperature = defaults.get("temperature", 1.0) if temperature is None else temperature
    top_k = defaults.get("top_k", 0) if top_k_given is None else top_k_given
    if top_k_given is not None and top_k_given < 1:
        raise CharnnError(f"--top-k must be >= 1 (got {top_k_given})")
    vocab = Vocab(tuple(ckpt.vocab_chars))
    encoding = ckpt.config["data"].get("encoding", "utf-8")
    prime = _map_rare(vocab, to_symbols(seed, encoding), "--seed")
    rng = np.random.default_rng(rng_seed)
    out = sys.stdout.buffer
    stream = sys.stdout.isatty()  # a terminal sees text as it is made; a pipe gets whole samples
    sys.stdout.flush()
    for i in range(num_samples):
        chars = generate(ckpt.params, vocab, prime, length, temperature=temperature, top_k=top_k, greedy=greedy, rng=rng)
        out.write(from_symbols(prime, encoding))
        if stream:
            for ch in chars:
                out.write(from_symbols(ch, encoding))
                out.flush()
        else:
            out.write(from_symbols("".join(chars), encoding))
        out.write(b"\n\n" if i < num_samples - 1 else b"\n")
    out.flush()


@app.command("eval")
@_friendly
def eval_(
    text_file: Path = typer.Argument(..., help="UTF-8 text to score."),
    checkpoint_path: Optional[Path] = typer.Option(
        None, "--checkpoint", "-c", help="Checkpoint to evaluate (default: best.npz of the most recent run in runs/)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    streams: int = typer.Option(1, "--streams", min=1, help="Score in this many warmed-up pieces at once: faster, "
                                "very slightly approximate; 1 (default) is the exact definition."),
) -> None:
    """Score a text: mean -ln p(c_i | c_0..c_{i-1}) over i >= 1, from a zero state.

    Reports nats/char, bits/char and perplexity.

    Example: charnn eval data/hello.txt --json
    """
    from rich.console import Console

    from charnn.corpus import read_text_file, text_file_bytes
    from charnn.display import eval_table
    from charnn.evaluate import evaluate_ids
    from charnn.vocab import Vocab

    ckpt = _load_checkpoint(checkpoint_path)
    encoding = ckpt.config["data"].get("encoding", "utf-8")
    text = read_text_file(text_file) if encoding == "utf-8" else text_file_bytes(text_file).decode("latin-1")
    vocab = Vocab(tuple(ckpt.vocab_chars))
    text = _map_rare(vocab, text, str(text_file))
    unknown = vocab.unknown_chars(text)
    if unknown:
        shown = ", ".join(map(repr, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
        raise CharnnError(f"{text_file} has {len(unknown)} characters outside the model's vocabulary: {shown}")
    result = evaluate_ids(ckpt.params, vocab.encode(text), streams=streams).as_dict()
    if as_json:
        typer.echo(json.dumps(result))
    else:
        Console(highlight=False).print(eval_table(str(text_file), result))


@app.command("inspect-gradients")
@_friendly
def inspect_gradients(
    checkpoint_path: Optional[Path] = typer.Option(
        None, "--checkpoint", "-c", help="Model to analyse (default: best.npz of the most recent run in runs/)."
    ),
    config: Optional[Path] = typer.Option(None, "--config", help="Analyse a freshly initialised model of this config instead."),
    set_: List[str] = typer.Option([], "--set", help="Override a key of --config, e.g. --set model.hidden_size=256."),
    init_std: Optional[float] = typer.Option(None, "--init-std", help="With --config: initialise weights from N(0, std^2)."),
    text: Optional[str] = typer.Option(None, "--text", help="Analyse exactly this text (its first T+1 characters)."),
    text_file: Optional[Path] = typer.Option(None, "--text-file", help="Analyse the first T+1 characters of this file."),
    steps: int = typer.Option(50, "--steps", "-T", help="T: how many steps back to follow the gradient."),
    windows: int = typer.Option(8, "--windows", help="Random windows of the validation text to average over."),
    rng_seed: int = typer.Option(0, "--rng-seed", min=0, help="Seed for choosing the windows."),
    check: bool = typer.Option(False, "--check", help="Also check backward against finite differences (exit 1 if error >= 1e-6)."),
    as_json: bool = typer.Option(False, "--json", help="Print every number as one JSON object."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a picture of norm against lag (.png or .svg; needs matplotlib)."),
) -> None:
    """Watch gradients vanish or explode through time, per layer and lag.

    Measures ||dl_T/ds_{T-k}||, the Jacobian norm ||ds_T/ds_{T-k}|| and each step's share of
    dl_T/dW_hh for k = 0..T-1, then gives a verdict: vanishing, exploding or healthy.

    Example: charnn inspect-gradients --config configs/demo.yaml --init-std 1.0
    """
    from rich.console import Console

    from charnn.config import from_dict, load_config
    from charnn.corpus import read_text_file
    from charnn.display import gradient_tables, plot_gradients
    from charnn.gradients import inspect_model
    from charnn.train import load_corpus
    from charnn.vocab import Vocab, to_symbols

    if checkpoint_path is not None and config is not None:
        raise CharnnError("give either --checkpoint or --config, not both")
    if text is not None and text_file is not None:
        raise CharnnError("give either --text or --text-file, not both")
    if init_std is not None and config is None:
        raise CharnnError("--init-std applies to a fresh model: use it with --config")
    if init_std is not None and not init_std > 0:
        raise CharnnError(f"--init-std must be > 0 (got {init_std})")
    if text_file is not None:
        text = read_text_file(text_file)
    clip_fraction = None
    if config is not None:
        overrides = list(set_) + ([f"model.init_scale={init_std}", "model.init=normal"] if init_std else [])
        cfg = load_config(config, overrides)
        corpus = load_corpus(cfg)
        m = cfg.model
        params = model.init_params(corpus.vocab.size, m.hidden_size, m.num_layers, init=m.init, scale=m.init_scale,
                                   rng=np.random.default_rng(cfg.run.seed), dtype=np.float64, cell=m.cell)
        vocab, encoding = corpus.vocab, cfg.data.encoding
    else:
        try:
            ckpt = _load_checkpoint(checkpoint_path)
        except CharnnError as e:
            if checkpoint_path is None:
                raise CharnnError(f"{e}; or analyse a fresh model with --config CONFIG.yaml") from None
            raise
        params, vocab = ckpt.params, Vocab(tuple(ckpt.vocab_chars))
        encoding = ckpt.config["data"].get("encoding", "utf-8")
        step = ckpt.meta.get("step") or 0
        clip_fraction = ckpt.meta["clip_count"] / step if step and "clip_count" in ckpt.meta else None
        corpus = load_corpus(from_dict(ckpt.config, source=str(checkpoint_path or "checkpoint"))) if text is None else None
    corpus_ids = None
    if text is not None:
        text = _map_rare(vocab, to_symbols(text, encoding), "the text")
    else:
        corpus_ids = corpus.val if len(corpus.val) >= steps + 1 else corpus.train
    report = inspect_model(params, vocab, steps=steps, text=text, corpus_ids=corpus_ids, windows=windows,
                           rng_seed=rng_seed, clip_fraction=clip_fraction, check=check)
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    else:
        console = Console(highlight=False)
        for item in gradient_tables(report):
            console.print(item)
    if plot is not None:
        plot_gradients(report, plot)
    if check:
        worst = max((e for e in report.check.values() if e is not None), default=0.0)
        if worst >= 1e-6:
            raise CharnnError(
                f"gradient check failed: max relative error {worst:.2e} >= 1e-6 (finite differences are unreliable "
                "where the loss is chaotic, as with exploding gradients; try a smaller --steps)"
            )


data_app = typer.Typer(help="Prepare corpora ahead of training.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
@_friendly
def data_prepare(
    config: Path = typer.Argument(..., help="YAML experiment config whose data section to prepare."),
    set_: List[str] = typer.Option([], "--set", help="Override a config key, e.g. --set data.min_char_count=5."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as one JSON object."),
) -> None:
    """Encode a corpus into the id cache that training reads, and summarise it.

    Streams the text in blocks (any size), builds the vocabulary, and stores the ids once;
    later runs reuse them while the source is unchanged.

    Example: charnn data prepare configs/shakespeare.yaml
    """
    from rich.console import Console

    from charnn.config import load_config
    from charnn.display import corpus_summary, stderr_console
    from charnn.train import load_corpus

    cfg = load_config(config, set_)
    console = stderr_console()
    corpus = load_corpus(cfg, lambda message: console.print(message, markup=False))
    prepared = corpus.prepared
    order = np.argsort(-prepared.counts, kind="stable")
    pairs = [(prepared.vocab.chars[i], int(prepared.counts[i])) for i in order if prepared.counts[i] > 0]
    summary = {
        "source": prepared.source, "chars": int(len(prepared.ids)), "vocab_size": prepared.vocab.size,
        "encoding": cfg.data.encoding, "most_frequent": pairs[:5], "rarest": pairs[::-1][:5],
        "replaced": prepared.replaced, "replaced_distinct": prepared.replaced_distinct,
        "train": len(corpus.train), "val": len(corpus.val), "test": len(corpus.test),
        "cache": str(prepared.cache_dir) if prepared.cache_dir else None, "reused": prepared.reused,
    }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
    else:
        Console(highlight=False).print(corpus_summary(summary))


@data_app.command("synth")
@_friendly
def data_synth(
    task: str = typer.Argument(..., help="delay or brackets."),
    output: Path = typer.Option(..., "--output", "-o", help="Text file to write (its oracle losses go to FILE.json)."),
    lag: int = typer.Option(10, "--lag", "-k", help="K: how far back the model must remember."),
    length: int = typer.Option(200_000, "--length", "-n", help="Characters to generate."),
    rng_seed: int = typer.Option(0, "--rng-seed", min=0, help="Seed: the same seed writes the same text."),
) -> None:
    """Write a synthetic text that can only be predicted by remembering K characters back.

    Prints the best possible loss (perfect memory) and the loss without that memory, so a
    model's loss reads as the fraction of the recoverable information it learned.

    Example: charnn data synth delay --lag 20 -o data/delay20.txt
    """
    from charnn.synth import generate, write

    summary = write(generate(task, lag, length, rng_seed), output)
    typer.echo(json.dumps(summary))


@app.command()
@_friendly
def sweep(
    sweep_file: Path = typer.Argument(..., help="Sweep file: base config, search space, budget (see configs/sweeps/shakespeare.yaml)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="Optuna storage URL (sqlite:///..., postgresql://...) "
                                          "or a journal file (default: <run.dir>/<sweep>/optuna-journal.log)."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, help="Finished (complete or pruned) trials the study "
                                         "should hold; overrides the file's trials. A restart continues towards it."),
    workers: int = typer.Option(1, "--workers", min=1, help="Worker processes to run here, each with cores/N BLAS threads."),
    as_json: bool = typer.Option(False, "--json", help="Print the study as one JSON object."),
    status: bool = typer.Option(False, "--status", help="Show the trials so far without running any."),
    worker: bool = typer.Option(False, "--worker", hidden=True, help="Run as one worker of --workers (no result printed)."),
) -> None:
    """Search hyperparameters with Optuna; every trial is a run directory <run.dir>/<sweep>/trial-<n>/.

    Workers on other machines join with the same command and the same --storage. Ctrl-C records the running trial as failed and exits 130; the same command continues the study. The best trial's config is written to <run.dir>/<sweep>/best.yaml.

    Example: charnn sweep configs/sweeps/shakespeare.yaml --workers 2
    """
    from rich.console import Console

    from charnn import sweep as sweeps
    from charnn.display import stderr_console, sweep_table

    spec = sweeps.load_sweep(sweep_file, storage, trials)
    console = stderr_console()
    log = lambda message: console.print(message, markup=False, soft_wrap=True)  # noqa: E731
    if worker:
        sweeps.run_worker(spec, log)
        return
    summary = sweeps.status(spec) if status else sweeps.run_sweep(spec, workers, log)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        out = Console(highlight=False)
        for item in sweep_table(summary):
            out.print(item)
    if summary["best"] is not None and spec.best_path.exists():
        console.print(f"best config: {spec.best_path} (train it with: charnn train {spec.best_path})", markup=False)


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
