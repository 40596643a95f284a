"""charnn train, sample and eval: each a thin layer over charnn.train, Model.stream and Model.score."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import List, Optional

import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

from charnn import api
from charnn.cli.core import CHECKPOINT_HELP, EXIT_INTERRUPTED, FLAG, SET_HELP, Picked, app, command, note_mapped
from charnn.errors import CharnnError
from charnn.api.defaults import DYNAMIC_DECAY, DYNAMIC_LR, SEGMENT_LEN  # --dynamic's tuning, shown in --help


_TRAIN_CONFIG = typer.Argument(None, metavar="[CONFIG]", help="YAML experiment config (docs: Configuration); "
                               "with --resume, the config that started the run or the run's directory. "
                               "Without it, --data FILE trains built-in settings on FILE.")
_TRAIN_DATA = typer.Option(None, "--data", "-d", metavar="FILE",
                           help="Train on this text file: with no CONFIG, with built-in settings "
                           "(a 3-layer Elman network, 5 minutes) in runs/<FILE's name>/; with a "
                           "CONFIG, in place of its data.path.")
_TRAIN_MINUTES = typer.Option(None, "--minutes", "-m", metavar="M",
                              help="Train for M minutes at most (sets train.max_minutes); with --resume, M minutes "
                              "more: it adds time, not steps (a run that stopped on its step count takes "
                              "--set train.steps=N).")
_TRAIN_SET = typer.Option([], "--set", metavar="KEY=VALUE", help=SET_HELP)
_TRAIN_RESUME = typer.Option(False, "--resume", metavar=FLAG,
                             help="Continue a run from its latest.npz, exactly: charnn train --resume RUN_DIR.")
_TRAIN_RUN_DIR = typer.Option(None, "--run-dir", metavar="DIR",
                              help="Run directory (default: <run.dir>/<run.name>).")
_TRAIN_FORCE = typer.Option(False, "--force", metavar=FLAG, help="Overwrite an existing run directory.")
_TRAIN_QUIET = typer.Option(False, "--quiet", "-q", metavar=FLAG, help="Print only the final summary.")
_TRAIN_AS_JSON = typer.Option(False, "--json", metavar=FLAG,
                              help="Print the result as one JSON object on stdout (also when stopped early).")


@command(app)
def train(
    config: Optional[Path] = _TRAIN_CONFIG,
    data: Optional[Path] = _TRAIN_DATA,
    minutes: Optional[float] = _TRAIN_MINUTES,
    set_: List[str] = _TRAIN_SET,
    resume: bool = _TRAIN_RESUME,
    run_dir: Optional[Path] = _TRAIN_RUN_DIR,
    force: bool = _TRAIN_FORCE,
    quiet: bool = _TRAIN_QUIET,
    as_json: bool = _TRAIN_AS_JSON,
) -> None:
    """Train a model on your text (--data FILE) or from a YAML config.

    Writes config.yaml, metrics.jsonl, latest.npz and best.npz into the run directory. Ctrl-C saves latest.npz and prints the command that continues the run. Resuming a run that has used up its steps or minutes changes nothing and says how to extend it.

    Example: charnn train --data story.txt --minutes 3 (or: charnn train my.yaml --set train.steps=500)
    """
    from charnn.api.progress import TrainProgress
    from charnn.cli.display import print_error, print_hint, stderr_console, summary_table
    from charnn.errors import TrainingStopped

    cfg, folder = _training_config(config, set_, resume, run_dir, data, minutes)
    console = stderr_console()
    progress = TrainProgress(console, quiet=quiet)
    try:
        run = api.train(cfg, folder, resume=resume, force=force, progress=progress)
    except TrainingStopped as e:
        if as_json and getattr(e, "run", None) is not None:
            typer.echo(json.dumps(e.run.to_dict()))
        raise
    finally:
        progress.close()  # the live bar is erased before anything below is printed
    if run.stopped == "interrupted":
        print_error(f"interrupted at step {run.steps}; saved {run.dir / 'latest.npz'}")
        print_hint(f"Resume with: charnn train --resume {shlex.quote(str(run.dir))}")
        if as_json:
            typer.echo(json.dumps(run.to_dict()))
        raise typer.Exit(EXIT_INTERRUPTED)
    if run.note:
        console.print(_finished_note(run, cfg, minutes), markup=False)
    console.print(summary_table(run))
    if as_json:
        typer.echo(json.dumps(run.to_dict()))
    if not run.note:
        console.print(f"sample from it with: charnn sample --checkpoint {run.checkpoint}", markup=False)


def _finished_note(run, cfg, minutes: Optional[float]) -> str:
    """A resumed run that had already finished: the command that gives it more. --minutes adds time,
    not steps: a step limit stays (lifting it would switch a cosine schedule laid over the steps to
    one over the clock, so the run would no longer continue as it was trained)."""
    resume = f"charnn train --resume {shlex.quote(str(run.dir))}"
    said = run.note.split("; to train it further")[0]
    if run.stopped == "steps":
        why = "; --minutes adds time, not steps" if minutes is not None else ""
        return f"note: {said}{why}; to train it further: {resume} --set train.steps={2 * cfg.train.steps}"
    return (f"note: {said}; to train it further: {resume} --minutes M (M more minutes), "
            f"or --set train.max_minutes={2 * cfg.train.max_minutes:.3g}")


def _training_config(config: Optional[Path], overrides: List[str], resume: bool, run_dir: Optional[Path],
                     data: Optional[Path], minutes: Optional[float]):
    """(config, run directory) for `charnn train [CONFIG|RUN_DIR] [--data FILE] [--minutes M]`: with
    --resume, RUN_DIR (or --data FILE's own run) continues with the config it saved, and --minutes
    gives it that many minutes more than it has trained."""
    if config is None and data is None:
        if resume:
            raise UsageError("give the run to continue: charnn train --resume RUN_DIR (or its CONFIG.yaml, "
                             "or --data FILE for the run of that text)")
        raise UsageError("give a CONFIG.yaml to train from, or --data FILE to train on your own text "
                         "(e.g. charnn train --data story.txt)")
    source, folder = config, run_dir
    if resume and config is not None and not config.exists() and config.suffix.lower() not in (".yaml", ".yml"):
        raise CharnnError(f"run directory {config} not found; check the path (charnn train --resume RUN_DIR)")
    if config is not None and config.is_dir():
        if not resume:
            raise CharnnError(f"{config} is a directory; to continue the run in it: "
                              f"charnn train --resume {shlex.quote(str(config))}")
        if run_dir is not None and run_dir.resolve() != config.resolve():
            raise CharnnError(f"give the run to resume once: {config} or --run-dir {run_dir}, not both")
        if not (config / "config.yaml").is_file():
            raise CharnnError(f"{config} is not a run directory (it has no config.yaml); give a config file, "
                              "or the directory of a run to resume")
        folder = config
    elif config is not None and config.is_file() and not api.configs.looks_like_config(config):
        raise CharnnError(f"{config} is not a YAML config; to train on this text: "
                          f"charnn train --data {shlex.quote(str(config))}")
    cfg = api.load_config(source, overrides, data=data)
    if source is None and resume:  # --data FILE --resume: its run continues with the config it saved
        saved = (folder or Path(cfg.run.dir) / cfg.run.name)
        if (saved / "config.yaml").is_file():
            source = folder = saved
            cfg = api.load_config(source, overrides, data=data)
    if minutes is not None:
        folder_now = folder or Path(cfg.run.dir) / cfg.run.name
        latest = folder_now / "latest.npz"
        trained = (api.describe(latest)["elapsed_s"] or 0.0) / 60 if resume and latest.is_file() else 0.0
        cfg = api.load_config(source, overrides, data=data, minutes=minutes + trained)
    return cfg, folder


_SAMPLE_SEED = typer.Option("", "--seed", "-s", metavar="TEXT",
                            help="Priming text the sample continues (printed first). Without it the sample starts "
                            "the way the training text does: as after a line break (or, in a text without line "
                            "breaks, with a first character drawn by the text's own frequencies).")
_SAMPLE_CHECKPOINT_PATH = typer.Option(None, "--checkpoint", "-c", metavar="PATH", help=CHECKPOINT_HELP)
_SAMPLE_LENGTH = typer.Option(None, "--length", "-n", metavar="N",
                              help="Characters to generate (default: the checkpoint's sample.length).")
_SAMPLE_TEMPERATURE = typer.Option(None, "--temperature", "-t", metavar="T",
                                   help="Softmax temperature > 0; lower is more conservative.")
_SAMPLE_TOP_K = typer.Option(None, "--top-k", metavar="K",
                             help="Sample only among the K likeliest characters; 0 means all.")
_SAMPLE_TOP_P = typer.Option(None, "--top-p", metavar="P",
                             help="Nucleus sampling: only among the fewest likeliest characters whose probabilities "
                             "add up to P (0 < P <= 1; 1 means all). Applied after --top-k.")
_SAMPLE_GREEDY = typer.Option(False, "--greedy", metavar=FLAG,
                              help="Always take the likeliest character (deterministic; ignores --temperature).")
_SAMPLE_RNG_SEED = typer.Option(None, "--rng-seed", min=0, metavar="N",
                                help="Seed of the random generator, for repeatable samples.")
_SAMPLE_NUM_SAMPLES = typer.Option(1, "--num-samples", min=1, metavar="N",
                                   help="How many samples; each after the first is preceded by a line "
                                   "'--- sample I of N ---'.")
_SAMPLE_KERNELS = typer.Option("numpy", "--kernels", metavar="numpy|fast",
                               help="fast: read on the compiled kernels (the fast extra; 1.7-2.4x the characters "
                                    "per second for long samples; the same text to float32 rounding).")
_SAMPLE_AS_JSON = typer.Option(False, "--json", metavar=FLAG,
                               help="Print one JSON object (text, samples, settings, chars_per_s) instead.")


@command(app)
def sample(
    seed: str = _SAMPLE_SEED,
    checkpoint_path: Optional[Path] = _SAMPLE_CHECKPOINT_PATH,
    length: Optional[int] = _SAMPLE_LENGTH,
    temperature: Optional[float] = _SAMPLE_TEMPERATURE,
    top_k: Optional[int] = _SAMPLE_TOP_K,
    top_p: Optional[float] = _SAMPLE_TOP_P,
    greedy: bool = _SAMPLE_GREEDY,
    rng_seed: Optional[int] = _SAMPLE_RNG_SEED,
    num_samples: int = _SAMPLE_NUM_SAMPLES,
    kernels: str = _SAMPLE_KERNELS,
    as_json: bool = _SAMPLE_AS_JSON,
) -> None:
    """Generate text from a trained model; only the text goes to stdout, as it is made.

    --seed is the priming text, not the random seed (that is --rng-seed).

    Example: charnn sample --seed h --greedy
    """
    from charnn.cli.display import TextStream

    picked = Picked(checkpoint_path)
    model = api.load(picked.path)
    mapped, count = model.vocab.map_rare(seed)
    note_mapped(count, "--seed")
    import numpy as np

    rng = np.random.default_rng(rng_seed)  # one generator: each sample continues where the last left it

    def draw():
        return model.stream(seed, length, temperature, top_k, greedy, rng, top_p, kernels)

    draws = [draw()]  # the seed and settings are checked before anything is said or written
    draws += [draw() for _ in range(num_samples - 1)]
    picked.say()
    if as_json:
        s = model.config.sample
        settings = {"seed": seed, "temperature": s.temperature if temperature is None else temperature,
                    "top_k": s.top_k if top_k is None else top_k, "top_p": s.top_p if top_p is None else top_p,
                    "greedy": greedy,
                    "length": s.length if length is None else length, "checkpoint": str(picked.path)}
        _print_samples_json(draws, settings)
        return
    with TextStream(sys.stdout) as out:
        for i, pieces in enumerate(draws):
            if i:
                out.line(f"--- sample {i + 1} of {num_samples} ---")
            out.write(mapped if model.config.data.encoding == "utf-8" else seed)
            for piece in pieces:
                out.write(piece)
            out.end_line()


def _print_samples_json(draws: list, settings: dict) -> None:
    """sample --json: text (the first), samples, the settings used, checkpoint and chars_per_s."""
    start = time.perf_counter()
    texts = ["".join(pieces) for pieces in draws]  # generated here: the draws are lazy
    rate = settings["length"] * len(texts) / max(time.perf_counter() - start, 1e-9)
    out = {"text": texts[0], "samples": texts, **settings, "chars_per_s": round(rate, 1)}
    keys = ("text", "samples", "seed", "temperature", "top_k", "top_p", "greedy", "length", "checkpoint", "chars_per_s")
    typer.echo(json.dumps({k: out[k] for k in keys}, ensure_ascii=False))


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
    dynamic_lr: float = typer.Option(DYNAMIC_LR, "--dynamic-lr", metavar="LR", help="--dynamic: step size."),
    dynamic_decay: float = typer.Option(DYNAMIC_DECAY, "--dynamic-decay", metavar="D",
                                        help="--dynamic: pull back toward the trained weights per segment, in [0, 1)."),
) -> None:
    """Score a text: mean -ln p(c_i | c_0..c_{i-1}) over i >= 1, from a zero state.

    Reports nats/char, bits/char and perplexity. The text is streamed, so files of any size fit in memory. --split test scores the run's held-out test text (data.test_fraction). --dynamic adds the loss under dynamic evaluation, a different protocol: the model adapts to the text as it reads it.

    Example: charnn eval story.txt --json
    """
    from charnn.cli.display import eval_table, stdout_console

    if (text_file is None) == (split is None):
        raise CharnnError("give a TEXT_FILE to score or --split train|val|test, not both and not neither")
    picked = Picked(checkpoint_path)
    model = api.load(picked.path)
    score = model.score(file=text_file, split=split, streams=streams, dynamic=dynamic, segment_len=segment_len,
                        dynamic_lr=dynamic_lr, dynamic_decay=dynamic_decay)
    note_mapped(score.mapped, str(text_file))
    picked.say()
    if as_json:
        typer.echo(json.dumps(dict(score.to_dict(), checkpoint=str(picked.path))))
    else:
        stdout_console().print(eval_table(str(text_file) if text_file else f"the {split} split", score.to_dict()))
