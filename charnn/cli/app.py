"""The `charnn` command line: a thin Typer layer over the library.

Each command parses its arguments, calls library functions and renders the result.
A CharnnError becomes a one-line message on stderr and exit code 1; a usage error, exit 2.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, UsageError

from charnn import __version__
from charnn.training import checkpoint
from charnn.analysis.dynamic import DECAY, LR, SEGMENT_LEN
from charnn.errors import CharnnError

app = typer.Typer(
    name="charnn",
    help="Train character-level recurrent language models with NumPy, sample from them, "
    "and watch their gradients through time.\n\n"
    "Example: charnn train configs/hello.yaml && charnn sample --seed h",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_INTERRUPTED = 130
FLAG = ""  # the metavar of an on/off option: nothing to show after the flag's name
SET_HELP = ("Override config keys: --set train.lr=3e-3 model.hidden_size=256 (several after one --set, "
            "or repeat --set).")


def _friendly(command):
    """Turn project errors into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from charnn.cli.display import print_error, print_hint
        from charnn.training.loop import TrainingInterrupted, TrainingStopped

        try:
            return command(*args, **kwargs)
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


def _map_rare(vocab, text: str, name: str) -> str:
    """Map characters the model never saw to its rare-character symbol, if it has one, and say so."""
    text, count = vocab.map_rare(text)
    _note_mapped(count, name)
    return text


def _note_mapped(count: int, name: str) -> None:
    from charnn.cli.display import stderr_console

    if count:
        stderr_console().print(f"note: {count} characters of {name} are outside the vocabulary and were mapped to "
                               "U+FFFD, as training mapped rare ones (data.min_char_count)", markup=False)


class _Picked:
    """The checkpoint a command uses: the one given, or the most recent run's best.npz. When it was
    picked here, `say()` names it in one stderr line; commands call it once their input is checked,
    so an error stays one line (and names the checkpoint itself when it is about it)."""

    def __init__(self, path: Optional[Path], other: str = "--checkpoint PATH"):
        self.given = path is not None
        self.path = path if path is not None else checkpoint.most_recent()
        self.other = other

    def say(self) -> None:
        if self.given:
            return
        from charnn.cli.display import print_used

        print_used(self.path, checkpoint.inspect(self.path)[0].get("val_loss"), other=self.other)
        self.given = True  # once


CHECKPOINT_HELP = "Checkpoint file (default: best.npz of the most recently written run under ./runs)."


@app.command()
@_friendly
def train(
    config: Optional[Path] = typer.Argument(None, metavar="[CONFIG]", help="YAML experiment config (see configs/); "
                                            "with --resume, the config that started the run or the run's directory. "
                                            "Without it, --data FILE trains built-in settings on FILE."),
    data: Optional[Path] = typer.Option(None, "--data", "-d", metavar="FILE",
                                        help="Train on this text file: with no CONFIG, with built-in settings "
                                        "(a 3-layer Elman network, 5 minutes) in runs/<FILE's name>/; with a "
                                        "CONFIG, in place of its data.path."),
    minutes: Optional[float] = typer.Option(None, "--minutes", "-m", metavar="M",
                                            help="Train for M minutes (sets train.max_minutes); with --resume, "
                                            "M minutes more."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
    resume: bool = typer.Option(False, "--resume", metavar=FLAG,
                                help="Continue a run from its latest.npz, exactly: charnn train --resume RUN_DIR."),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", metavar="DIR",
                                           help="Run directory (default: <run.dir>/<run.name>)."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Overwrite an existing run directory."),
    quiet: bool = typer.Option(False, "--quiet", "-q", metavar=FLAG, help="Print only the final summary."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG,
                                 help="Print the result as one JSON object on stdout (also when stopped early)."),
) -> None:
    """Train a model on your text (--data FILE) or from a YAML config.

    Writes config.yaml, metrics.jsonl, latest.npz and best.npz into the run directory. Ctrl-C saves latest.npz and prints the command that continues the run. Resuming a run that has used up its steps or minutes changes nothing and says how to extend it.

    Example: charnn train --data story.txt --minutes 3 (or: charnn train configs/hello.yaml --set train.steps=500)
    """
    from charnn.cli.display import TrainProgress, stderr_console, summary_table
    from charnn.training.rundir import training_target
    from charnn.training.loop import TrainingStopped
    from charnn.training.loop import train as run_training

    if config is None and data is None:
        raise UsageError("give a CONFIG.yaml to train from, or --data FILE to train on your own text "
                         "(e.g. charnn train --data story.txt)")
    cfg, run_dir = training_target(config, set_, resume=resume, run_dir=run_dir, data=data, minutes=minutes)
    console = stderr_console()
    progress = TrainProgress(console, quiet=quiet)
    try:
        result = run_training(cfg, run_dir, resume=resume, force=force, callback=progress)
    except TrainingStopped as e:
        progress.close()
        if as_json and e.result is not None:
            typer.echo(json.dumps(e.result.as_json()))
        raise
    finally:
        progress.close()
    if result.note:
        console.print(f"note: {result.note}", markup=False)
    console.print(summary_table(result))
    if as_json:
        typer.echo(json.dumps(result.as_json()))
    if not result.note:
        console.print(f"sample from it with: charnn sample --checkpoint {result.run_dir / 'best.npz'}", markup=False)


@app.command()
@_friendly
def sample(
    seed: str = typer.Option("", "--seed", "-s", metavar="TEXT",
                             help="Priming text the sample continues (printed first). Without it the sample starts "
                             "the way the training text does: as after a line break (or, in a text without line "
                             "breaks, with a first character drawn by the text's own frequencies)."),
    checkpoint_path: Optional[Path] = typer.Option(None, "--checkpoint", "-c", metavar="PATH", help=CHECKPOINT_HELP),
    length: Optional[int] = typer.Option(None, "--length", "-n", metavar="N",
                                         help="Characters to generate (default: the checkpoint's sample.length)."),
    temperature: Optional[float] = typer.Option(None, "--temperature", "-t", metavar="T",
                                                help="Softmax temperature > 0; lower is more conservative."),
    top_k: Optional[int] = typer.Option(None, "--top-k", metavar="K",
                                        help="Sample only among the K likeliest characters; 0 means all."),
    greedy: bool = typer.Option(False, "--greedy", metavar=FLAG,
                                help="Always take the likeliest character (deterministic; ignores --temperature)."),
    rng_seed: Optional[int] = typer.Option(None, "--rng-seed", min=0, metavar="N",
                                           help="Seed of the random generator, for repeatable samples."),
    num_samples: int = typer.Option(1, "--num-samples", min=1, metavar="N",
                                    help="How many samples; each after the first is preceded by a line "
                                    "'--- sample I of N ---'."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG,
                                 help="Print one JSON object (text, samples, settings, chars_per_s) instead."),
) -> None:
    """Generate text from a trained model; only the text goes to stdout, as it is made.

    --seed is the priming text, not the random seed (that is --rng-seed).

    Example: charnn sample --seed h --greedy
    """
    from charnn.cli.display import TextStream
    from charnn.nn.sampling import generate
    from charnn.data.vocab import Vocab, from_symbols, to_symbols

    picked = _Picked(checkpoint_path)
    ckpt = checkpoint.load(picked.path)
    defaults = ckpt.config.get("sample", {})
    length = defaults.get("length", 200) if length is None else length
    temperature = defaults.get("temperature", 1.0) if temperature is None else temperature
    top_k = defaults.get("top_k", 0) if top_k is None else top_k
    vocab = Vocab(tuple(ckpt.vocab_chars))
    encoding = ckpt.config["data"].get("encoding", "utf-8")
    prime = _map_rare(vocab, to_symbols(seed, encoding), "--seed")
    rng = np.random.default_rng(rng_seed)
    draw = functools.partial(generate, ckpt.params, ckpt.cell, vocab, prime, length, temperature=temperature, top_k=top_k,
                             greedy=greedy, rng=rng, char_counts=ckpt.char_counts, source=ckpt.name)
    draw().close()  # the seed and settings are checked before anything is said or written
    picked.say()
    if as_json:
        start = time.perf_counter()
        texts = [from_symbols("".join(draw()), encoding).decode("utf-8", errors="replace") for _ in range(num_samples)]
        typer.echo(json.dumps({
            "text": texts[0], "samples": texts, "seed": seed, "temperature": temperature, "top_k": top_k,
            "greedy": greedy, "length": length, "checkpoint": str(ckpt.path),
            "chars_per_s": round(length * num_samples / max(time.perf_counter() - start, 1e-9), 1),
        }, ensure_ascii=False))
        return
    with TextStream(sys.stdout, encoding) as out:
        for i in range(num_samples):
            if i:
                out.line(f"--- sample {i + 1} of {num_samples} ---")
            chars = draw()  # checks the seed before anything is written
            out.write(prime)
            for ch in chars:
                out.write(ch)
            out.end_line()


@app.command("eval")
@_friendly
def eval_(
    text_file: Optional[Path] = typer.Argument(None, metavar="[TEXT_FILE]", help="Text to score (or use --split)."),
    split: Optional[str] = typer.Option(None, "--split", metavar="train|val|test",
                                        help="Score this part of the checkpoint's own corpus instead of a file."),
    checkpoint_path: Optional[Path] = typer.Option(None, "--checkpoint", "-c", metavar="PATH", help=CHECKPOINT_HELP),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print one JSON object instead of a table."),
    streams: int = typer.Option(1, "--streams", min=1, metavar="N", help="Score in this many warmed-up pieces at "
                                "once: faster, very slightly approximate; 1 (default) is the exact definition."),
    dynamic: bool = typer.Option(False, "--dynamic", metavar=FLAG,
                                 help="Also score with dynamic evaluation: the model learns from each segment after "
                                 "scoring it (Krause et al. 2017)."),
    segment_len: int = typer.Option(SEGMENT_LEN, "--segment-len", metavar="N", help="--dynamic: characters per segment."),
    dynamic_lr: float = typer.Option(LR, "--dynamic-lr", metavar="LR", help="--dynamic: step size."),
    dynamic_decay: float = typer.Option(DECAY, "--dynamic-decay", metavar="D",
                                        help="--dynamic: pull back toward the trained weights per segment, in [0, 1)."),
) -> None:
    """Score a text: mean -ln p(c_i | c_0..c_{i-1}) over i >= 1, from a zero state.

    Reports nats/char, bits/char and perplexity. The text is streamed, so files of any size fit in memory. --split test scores the run's held-out test text (data.test_fraction). --dynamic adds the loss under dynamic evaluation, a different protocol: the model adapts to the text as it reads it.

    Example: charnn eval data/hello.txt --json
    """
    from charnn.cli.display import eval_table, stdout_console
    from charnn.analysis.dynamic import DynamicSettings
    from charnn.analysis.scoring import score

    settings = DynamicSettings(segment_len, dynamic_lr, dynamic_decay)
    if not dynamic and settings != DynamicSettings():
        raise CharnnError("--segment-len, --dynamic-lr and --dynamic-decay apply to dynamic evaluation: add --dynamic")
    picked = _Picked(checkpoint_path)
    ckpt = checkpoint.load(picked.path)
    settings = settings if dynamic else None
    result, name = score(ckpt, text_file=text_file, split=split, streams=streams, dynamic=settings, note=_note_mapped)
    picked.say()
    if as_json:
        typer.echo(json.dumps(dict(result, checkpoint=str(ckpt.path))))
    else:
        stdout_console().print(eval_table(name, result))


@app.command("inspect-gradients")
@_friendly
def inspect_gradients(
    checkpoint_path: Optional[Path] = typer.Option(None, "--checkpoint", "-c", metavar="PATH",
                                                   help="Model to analyse. " + CHECKPOINT_HELP),
    config: Optional[Path] = typer.Option(None, "--config", metavar="CONFIG",
                                          help="Analyse a freshly initialised model of this config instead."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="With --config: " + SET_HELP),
    init_std: Optional[float] = typer.Option(None, "--init-std", metavar="S",
                                             help="With --config: initialise weights from N(0, S^2)."),
    text: Optional[str] = typer.Option(None, "--text", metavar="TEXT", help="Analyse exactly this text (its first T+1 characters)."),
    text_file: Optional[Path] = typer.Option(None, "--text-file", metavar="FILE",
                                             help="Analyse the first T+1 characters of this file."),
    steps: Optional[int] = typer.Option(None, "--steps", "-T", metavar="T",
                                        help="How many steps back to follow the gradient (default: 50, or fewer "
                                        "when the text is shorter)."),
    windows: int = typer.Option(8, "--windows", metavar="N", help="Random windows of the validation text to average over."),
    rng_seed: int = typer.Option(0, "--rng-seed", min=0, metavar="N", help="Seed for choosing the windows."),
    check: bool = typer.Option(False, "--check", metavar=FLAG,
                               help="Also check backward against finite differences (exit 1 if error >= 1e-6)."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print every number as one JSON object."),
    plot: Optional[Path] = typer.Option(None, "--plot", metavar="FILE.png|FILE.svg",
                                        help="Write a picture of norm against lag (needs matplotlib)."),
) -> None:
    """Watch gradients vanish or explode through time, per layer and lag.

    Measures ||dl_T/ds_{T-k}||, the Jacobian norm ||ds_T/ds_{T-k}|| and each step's share of dl_T/dW_hh for k = 0..T-1, then gives a verdict: exploding, vanishing, short memory or healthy.

    Example: charnn inspect-gradients --config configs/demo.yaml --init-std 1.0
    """
    from charnn.analysis import subject
    from charnn.data.sources import read_text_file
    from charnn.cli.display import check_plot_target, gradient_tables, plot_gradients, stderr_console, stdout_console
    from charnn.analysis.gradients import inspect_model
    from charnn.data.vocab import to_symbols

    if checkpoint_path is not None and config is not None:
        raise CharnnError("give either --checkpoint or --config, not both")
    if text is not None and text_file is not None:
        raise CharnnError("give either --text or --text-file, not both")
    if init_std is not None and config is None:
        raise CharnnError("--init-std applies to a fresh model: use it with --config")
    if plot is not None:
        check_plot_target(plot)  # before any work
    if text_file is not None:
        text = read_text_file(text_file)
    need_corpus = text is None
    picked = None
    if config is None:
        try:
            picked = _Picked(checkpoint_path)
        except CharnnError as e:
            raise CharnnError(f"{e}; or analyse a fresh model with --config CONFIG.yaml") from None
        checkpoint_path = picked.path
    what = subject.fresh(config, set_, init_std, need_corpus) if config else subject.trained(checkpoint_path, need_corpus)
    if text is not None:
        text = _map_rare(what.vocab, to_symbols(text, what.encoding), "the text")
    source, source_name = what.windows_source(steps) if text is None else (None, "the given text")
    report = inspect_model(what.params, what.cell, what.vocab, steps=steps, text=text, windows=windows,
                           corpus_ids=source, corpus_name=source_name, rng_seed=rng_seed,
                           clip_fraction=what.clip_fraction, check=check)
    if picked is not None:
        picked.say()
    if report.note:
        stderr_console().print(f"note: {report.note}", markup=False)
    if as_json:
        typer.echo(json.dumps(dict(report.as_dict(), checkpoint=None if config else str(checkpoint_path))))
    else:
        console = stdout_console()
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


@app.command()
@_friendly
def info(
    checkpoint_path: Optional[Path] = typer.Argument(None, metavar="[CHECKPOINT]", help="Checkpoint (.npz) to "
                                                     "describe (default: best.npz of the most recently written run "
                                                     "under ./runs)."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print one JSON object instead of tables."),
) -> None:
    """Show what a checkpoint holds, from its headers and metadata, without loading its weights.

    Format and charnn version, cell and sizes, parameter count, vocabulary, step, characters seen, best validation loss and the config. A damaged or hostile file is refused as sample and eval would refuse it.

    Example: charnn info runs/hello/best.npz --json
    """
    from charnn.cli.display import checkpoint_tables, stdout_console

    picked = _Picked(checkpoint_path, other="charnn info CHECKPOINT")
    summary = checkpoint.describe(picked.path)
    picked.say()
    if as_json:
        typer.echo(json.dumps(dict(summary, checkpoint=summary["path"]), ensure_ascii=False))
    else:
        console = stdout_console()
        for table in checkpoint_tables(summary):
            console.print(table)


@app.command()
@_friendly
def report(
    run_dirs: Optional[List[Path]] = typer.Argument(None, metavar="[RUN_DIR ...]",
                                                    help="Run directories (default: the most recent run under ./runs)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="FILE.html",
                                          help="Where to write the page (default: <run>/report.html; for several "
                                          "runs, ./report.html)."),
    text: Optional[Path] = typer.Option(None, "--text", metavar="FILE", help="Show the units over this text."),
    text_chars: int = typer.Option(2000, "--text-chars", metavar="N",
                                   help="Else over the first N characters of the run's validation text."),
    units: int = typer.Option(6, "--units", metavar="N",
                              help="Units shown side by side: the ones that follow a property of the text, "
                              "then those that vary most."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the numbers behind the page as JSON."),
) -> None:
    """Write one HTML page that shows what a run learned; it opens in any browser, offline.

    Learning curves, samples over training, the gradient flow of best.npz, what its units track in a text (with the units that follow quotes, brackets or line position picked out), the model's surprisal and likeliest next characters per character, and how often each gate saturates. Several runs: their curves overlaid and their configs side by side. Needs matplotlib (pip install -e '.[plot]').

    Example: charnn report runs/demo && open runs/demo/report.html
    """
    from charnn.analysis.report.page import build_report

    given_dirs = bool(run_dirs)
    if not run_dirs:
        try:
            picked = checkpoint.most_recent(name="config.yaml").parent
        except CharnnError:
            from charnn import hints

            raise CharnnError(f"no run found under runs/; train first ({hints.train_first()}) "
                              "or give RUN_DIR") from None
        run_dirs = [picked]
    result = build_report(run_dirs, output, text, text_chars, units)
    if len(run_dirs) == 1 and not given_dirs:
        from charnn.cli.display import print_used

        best = run_dirs[0] / "best.npz"
        val_loss = checkpoint.inspect(best)[0].get("val_loss") if best.is_file() else None
        print_used(best if best.is_file() else run_dirs[0], val_loss, what="the most recent run",
                   other="charnn report RUN_DIR")
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
    else:
        typer.echo(result["report"])


data_app = typer.Typer(help="Prepare corpora ahead of training, or write synthetic ones.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("prepare")
@_friendly
def data_prepare(
    config: Path = typer.Argument(..., metavar="CONFIG", help="YAML experiment config whose data section to prepare."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the summary as one JSON object."),
) -> None:
    """Encode a corpus into the id cache that training reads, and summarise it.

    Streams the text in blocks (any size), builds the vocabulary, and stores the ids once; later runs reuse them while the source is unchanged.

    Example: charnn data prepare configs/shakespeare.yaml
    """
    from charnn.settings import load_config
    from charnn.data.corpus import load_corpus
    from charnn.cli.display import corpus_summary, stderr_console, stdout_console

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
        stdout_console().print(corpus_summary(summary))


@data_app.command("synth")
@_friendly
def data_synth(
    task: str = typer.Argument(..., metavar="delay|brackets", help="The task: a delayed repeat, or nested brackets."),
    output: Path = typer.Option(..., "--output", "-o", metavar="FILE",
                                help="Text file to write (its oracle losses go to FILE.json)."),
    lag: int = typer.Option(10, "--lag", "-k", metavar="K", help="K: how far back the model must remember."),
    length: int = typer.Option(200_000, "--length", "-n", metavar="N", help="Characters to generate."),
    rng_seed: int = typer.Option(0, "--rng-seed", min=0, metavar="N", help="Seed: the same seed writes the same text."),
    force: bool = typer.Option(False, "--force", metavar=FLAG, help="Overwrite FILE and FILE.json if they exist."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the oracle losses as one JSON object."),
) -> None:
    """Write a synthetic text that can only be predicted by remembering K characters back.

    Prints the best possible loss (perfect memory) and the loss without that memory, so a model's loss reads as the fraction of the recoverable information it learned.

    Example: charnn data synth delay --lag 20 -o data/delay20.txt
    """
    from charnn.cli.display import stdout_console, synth_table
    from charnn.data.synth import generate, write

    summary = write(generate(task, lag, length, rng_seed), output, force=force)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        stdout_console().print(synth_table(str(output), summary))


experiment_app = typer.Typer(help="The notes' claims as measurements: tables, CSV and figures.", no_args_is_help=True)
app.add_typer(experiment_app, name="experiment")


@experiment_app.command("memory-span")
@_friendly
def experiment_memory_span(
    cells_: str = typer.Option("rnn,lstm,gru,mlp", "--cells", metavar="CELLS", help="Cells to compare, comma-separated."),
    context: int = typer.Option(16, "--context", metavar="W", help="The mlp's window: the characters it sees."),
    seeds: str = typer.Option("0,1,2", "--seeds", metavar="S,...", help="Run seeds (initialisation)."),
    stages: Optional[str] = typer.Option(None, "--stages", metavar="K:SECONDS,...",
                                         help="The curriculum (default: K = 2, 5, 10, 20, 40, 80)."),
    set_: List[str] = typer.Option([], "--set", metavar="KEY=VALUE", help="Config overrides for every stage."),
    quick: bool = typer.Option(False, "--quick", metavar=FLAG, help="K = 2, 5, 10 with short budgets: a few minutes."),
    out: Path = typer.Option(Path("memory_span"), "--out", metavar="PREFIX", help="Writes PREFIX.csv and PREFIX.png."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the rows as one JSON object."),
) -> None:
    """How far back can each cell remember? Train each on the delay task for growing K and measure the share of the memory-recoverable information it learned.

    Example: charnn experiment memory-span --quick --seeds 0
    """
    from charnn.analysis import memory_span
    from charnn.cli.display import memory_span_table, stderr_console, stdout_console

    names = [c.strip() for c in cells_.split(",") if c.strip()]
    memory_span.check_cells(names)
    if context < 1:
        raise CharnnError(f"--context must be >= 1 (got {context})")
    try:
        seed_list = [int(s) for s in seeds.split(",")]
    except ValueError:
        raise CharnnError(f"--seeds {seeds!r}: expected integers, e.g. 0,1,2") from None
    plan = memory_span.parse_stages(stages) if stages else memory_span.QUICK if quick else memory_span.FULL
    csv = _experiment_output(out)
    has_plot = _plot_extra_check()
    console = stderr_console()
    with _rows_kept(csv):
        rows = memory_span.run(names, plan, seed_list, set_, context=context,
                               log=lambda m: console.print(m, markup=False),
                               on_row=lambda rows: memory_span.write_csv(rows, csv))
    if as_json:  # the results first: nothing that goes wrong with the figure can cost them
        keys = ("cell", "K", "seed", "fraction", "horizon")
        typer.echo(json.dumps({"rows": [{k: r[k] for k in keys} for r in rows]}))
    else:
        stdout_console().print(memory_span_table(memory_span.summary(rows)))
    if has_plot:
        memory_span.plot(rows, out.with_suffix(".png"))


@experiment_app.command("bias-variance")
@_friendly
def experiment_bias_variance(
    config: Path = typer.Argument(..., metavar="CONFIG", help="The config trained on each slice."),
    vary: str = typer.Option(..., "--vary", metavar="KEY=v1,v2,...", help="The config key to vary and its values."),
    subsets: int = typer.Option(4, "--subsets", metavar="K", help="Disjoint slices of the training text."),
    quick: bool = typer.Option(False, "--quick", metavar=FLAG,
                               help="At most 200 steps (and 12 s) per model and 20,000 held-out characters."),
    out: Path = typer.Option(Path("bias_variance"), "--out", metavar="PREFIX", help="Writes PREFIX.csv and PREFIX.png."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the rows as one JSON object."),
) -> None:
    """Split the held-out log loss into bias (plus noise) and variance: train the config on K disjoint slices of its training text for each value of one key.

    Example: charnn experiment bias-variance configs/shakespeare.yaml --vary model.hidden_size=32,128,512 --subsets 4
    """
    from charnn.analysis import bias_variance
    from charnn.cli.display import bias_variance_table, stderr_console, stdout_console

    plan, configs = bias_variance.plan(config, vary, subsets)
    if quick:
        configs = [bias_variance.quick(cfg) for cfg in configs]
    csv = _experiment_output(out)
    has_plot = _plot_extra_check()
    console = stderr_console()
    with _rows_kept(csv):
        result = bias_variance.run(plan, configs, log=lambda m: console.print(m, markup=False),
                                   held_out_chars=20_000 if quick else None,
                                   on_row=lambda so_far: bias_variance.write_csv(so_far, csv))
    if as_json:  # the results first: nothing that goes wrong with the figure can cost them
        typer.echo(json.dumps(result))
    else:
        stdout_console().print(bias_variance_table(result))
    if has_plot:
        bias_variance.plot(result, out.with_suffix(".png"))


def _experiment_output(prefix: Path) -> Path:
    """PREFIX.csv, its folder checked before an experiment spends any time."""
    if not prefix.parent.is_dir():
        raise CharnnError(f"--out {prefix}: the folder {prefix.parent} does not exist")
    return prefix.with_suffix(".csv")


@contextlib.contextmanager
def _rows_kept(csv: Path):
    """A stopped experiment says where its finished rows are, and no resume hint: its runs were temporary."""
    from charnn.training.loop import TrainingInterrupted, TrainingStopped

    try:
        yield
    except (TrainingStopped, KeyboardInterrupt) as e:
        kept = f"the finished rows are in {csv}" if csv.exists() else "no row had finished"
        if isinstance(e, (KeyboardInterrupt, TrainingInterrupted)):
            raise TrainingInterrupted(f"interrupted; {kept}") from None
        raise type(e)(f"{e}; {kept}") from None


def _plot_extra_check() -> bool:
    """Whether the figure can be drawn; without matplotlib the experiment still runs and says so."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from charnn.cli.display import stderr_console

        from charnn import hints

        stderr_console().print(f"note: no figure without matplotlib ({hints.install('plot')}); the CSV is written",
                               markup=False)
        return False
    return True


def _hide_type_column() -> None:
    """typer >= 0.20 prints each parameter's Python type (<bool>, <path>, <list[str]>) in the help;
    show the metavar (N, PATH, KEY=VALUE, delay|brackets) instead, and nothing for flags and arguments."""
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:  # pragma: no cover  (older typer shows no such column)
        return
    TyperOption.display_type_rich = lambda self, ctx: self.metavar or None
    TyperArgument.display_type_rich = lambda self, ctx: None


def _unwrap_docstrings(typer_app: typer.Typer) -> None:
    """Join the lines of each paragraph of the commands' docstrings, so help text reflows to the terminal."""
    for info in typer_app.registered_commands:
        doc = inspect.cleandoc(info.callback.__doc__ or "")
        info.help = "\n\n".join(" ".join(p.split("\n")) for p in doc.split("\n\n"))



_SET_PAIR = re.compile(r"^[A-Za-z_]\w*\.[A-Za-z_]\w*=")


def expand_set_arguments(argv: list[str]) -> list[str]:
    """Let one --set take several pairs: `--set a.b=1 c.d=2` becomes `--set a.b=1 --set c.d=2`."""
    out, takes_value, in_pairs = [], False, False
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        if takes_value:
            out.append(arg)
            takes_value, in_pairs = False, True
            continue
        if in_pairs and _SET_PAIR.match(arg):
            out += ["--set", arg]
            continue
        in_pairs = arg.startswith("--set=")
        takes_value = arg == "--set"
        out.append(arg)
    return out


def set_without_equals(argv: list[str]) -> str | None:
    """The error for `--set train.lr 0.01` (a space where = belongs), which the parser would only call
    an unexpected extra argument; None when every --set pair has its =."""
    for i, arg in enumerate(argv[:-1]):
        if arg == "--":
            return None
        key = argv[i + 1]
        if arg == "--set" and "=" not in key and re.fullmatch(r"[A-Za-z_]\w*\.[A-Za-z_]\w*", key):
            value = argv[i + 2] if i + 2 < len(argv) and not argv[i + 2].startswith("-") else "VALUE"
            return f"--set takes KEY=VALUE with no space around '=': --set {key}={value}"
    return None


@app.command()
@_friendly
def sweep(
    sweep_file: Path = typer.Argument(..., metavar="SWEEP.yaml",
                                      help="Sweep file: base config, search space, budget (see configs/sweeps/)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL",
                                          help="Optuna storage URL (sqlite:///..., postgresql://...) or a journal "
                                          "file (default: <run.dir>/<sweep>/optuna-journal.log)."),
    trials: Optional[int] = typer.Option(None, "--trials", min=1, metavar="N",
                                         help="Finished (complete or pruned) trials the study should hold; overrides "
                                         "the file's trials. A restart continues towards it."),
    workers: int = typer.Option(1, "--workers", min=1, metavar="N",
                                help="Worker processes to run here, each with cores/N BLAS threads."),
    as_json: bool = typer.Option(False, "--json", metavar=FLAG, help="Print the study as one JSON object."),
    status: bool = typer.Option(False, "--status", metavar=FLAG, help="Show the trials so far without running any."),
    worker: bool = typer.Option(False, "--worker", hidden=True, metavar=FLAG,
                                help="Run as one worker of --workers (no result printed)."),
) -> None:
    """Search hyperparameters with Optuna; every trial is a run directory <run.dir>/<sweep>/trial-<n>/.

    Workers on other machines join with the same command and the same --storage. Ctrl-C records the running trial as failed and exits 130; the same command continues the study. The best trial's config is written to <run.dir>/<sweep>/best.yaml.

    Example: charnn sweep configs/sweeps/shakespeare.yaml --workers 2
    """
    from charnn.sweep import study as sweeps
    from charnn.cli.display import stderr_console, stdout_console, sweep_table
    from charnn.sweep.spec import load_sweep

    spec = load_sweep(sweep_file, storage, trials)
    console = stderr_console()
    log = lambda message: console.print(message, markup=False)  # noqa: E731
    if worker:
        sweeps.run_worker(spec, log)
        return
    summary = sweeps.status(spec) if status else sweeps.run_sweep(spec, workers, log)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        out = stdout_console()
        for item in sweep_table(summary):
            out.print(item)
    if summary["best"] is not None and spec.best_path.exists():
        console.print(f"best config: {spec.best_path} (train it with: charnn train {spec.best_path})", markup=False)


_hide_type_column()
_unwrap_docstrings(app)
_unwrap_docstrings(data_app)
_unwrap_docstrings(experiment_app)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; returns the exit code. Usage errors are one line and exit 2."""
    from charnn.cli.display import print_error, use_plain_help_when_no_color

    use_plain_help_when_no_color()
    argv = list(sys.argv[1:] if argv is None else argv)
    spaced = set_without_equals(argv)
    if spaced:
        print_error(spaced)
        return 2
    argv = expand_set_arguments(argv)
    try:
        code = app(args=argv, prog_name="charnn", standalone_mode=False)
    except UsageError as e:
        message = e.format_message()
        if "unexpected extra argument" in message and "=" in message:
            message += "; each --set pair is section.key=value (e.g. --set train.lr=3e-3 model.hidden_size=256)"
        hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
        print_error(f"{message}{hint}")
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
