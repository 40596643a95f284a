"""charnn train, sample and eval."""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

from charnn.cli.core import (CHECKPOINT_HELP, FLAG, SET_HELP, Picked, app, command, map_rare, note_mapped)
from charnn.analysis.dynamic import DECAY, LR, SEGMENT_LEN
from charnn.errors import CharnnError
from charnn.training import checkpoint


@command(app)
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


@command(app)
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
    from charnn.data.vocab import from_symbols, to_symbols

    picked = Picked(checkpoint_path)
    ckpt = checkpoint.load(picked.path)
    defaults = ckpt.config.sample
    length = defaults.length if length is None else length
    temperature = defaults.temperature if temperature is None else temperature
    top_k = defaults.top_k if top_k is None else top_k
    vocab = ckpt.vocab
    encoding = ckpt.config.data.encoding
    prime = map_rare(vocab, to_symbols(seed, encoding), "--seed")
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


@command(app, "eval")
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
    picked = Picked(checkpoint_path)
    ckpt = checkpoint.load(picked.path)
    settings = settings if dynamic else None
    result, name = score(ckpt, text_file=text_file, split=split, streams=streams, dynamic=settings, note=note_mapped)
    picked.say()
    if as_json:
        typer.echo(json.dumps(dict(result, checkpoint=str(ckpt.path))))
    else:
        stdout_console().print(eval_table(name, result))
