#!/usr/bin/env python
"""Training throughput of charnn's full step, in characters per second, with PyTorch as a yardstick.

One training step is exactly what the trainer does per chunk, charnn.training.loop.train_step:
forward, backward, a finiteness guard, clip_gradients(grads, 5.0, "norm") and an Adam update,
with the trainer's reusable workspace, B*T characters per step, float32, a single layer, T=64 and V=65 by default. For each
(H, B) size the script prints the median chars/s over several timed repeats (after warm-up),
the implied GFLOP/s (6*(H^2 + H*V) FLOPs per character: 2 forward, 4 backward, for the
recurrent and the head matrices; the layer-0 input lookup costs no FLOPs) and that rate as a
fraction of a float32 GEMM peak measured here with a large square matmul.

When torch is importable the equivalent PyTorch step (nn.RNN tanh on one-hot inputs,
batch_first, nn.Linear head, cross-entropy, clip_grad_norm_(5), Adam, state carried and
detached across steps) is timed in the same run, its repeats interleaved with NumPy's, with
torch.set_num_threads set to the BLAS thread count. PyTorch is never a charnn dependency.

Finally the speed of sampling (one stream, 512 hidden units) is measured.

    python benchmarks/bench_train.py                        # all sizes, random ids
    python benchmarks/bench_train.py --sizes 128x32,512x64  # a subset
    python benchmarks/bench_train.py --text data/tinyshakespeare.txt
    python benchmarks/bench_train.py --baseline /path/to/old/checkout  # before/after, same run

--baseline times the same step of another checkout (a `git worktree` of an earlier commit) in
a worker process, its repeats interleaved with this checkout's, and prints the ratio.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# the checkout to time: --checkout DIR (a baseline worker) comes first on sys.path; otherwise this
# repository, appended last, so an installed charnn or PYTHONPATH still wins
_ROOT = Path(__file__).resolve().parent.parent
if "--checkout" in sys.argv:
    sys.path.insert(0, str(Path(sys.argv[sys.argv.index("--checkout") + 1]).resolve()))
elif str(_ROOT) not in sys.path:
    sys.path.append(str(_ROOT))

import charnn  # noqa: E402

# a module by its path now, or by its flat path in checkouts from before the packages (a --baseline)
_FLAT = {"nn.model": "model", "nn.optim": "optim", "data.corpus": "data", "training.loop": "train",
         "nn.workspace": "workspace", "training.checkpoint": "checkpoint", "nn.sampling": "sample",
         "data.vocab": "vocab"}


def charnn_module(path: str):
    try:
        return importlib.import_module(f"charnn.{path}")
    except ImportError:
        return importlib.import_module(f"charnn.{_FLAT[path]}")


charnn_model = charnn_module("nn.model")
_optim = charnn_module("nn.optim")
OptimizerSpec, apply_update, clip_gradients, init_state = (
    _optim.OptimizerSpec, _optim.apply_update, _optim.clip_gradients, _optim.init_state)

DEFAULT_SIZES = "128x32,256x64,512x64,1024x128"
DEFAULT_BATCH = {128: 32, 256: 64, 512: 64, 1024: 128}
LR = 2e-3
CLIP = 5.0


# ---- setup ----------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int]]:
    """'128x32,512x64' -> [(128, 32), (512, 64)]; a bare H takes its default batch (or 64)."""
    sizes = []
    for item in text.split(","):
        item = item.strip().lower()
        if not item:
            continue
        if "x" in item or ":" in item:
            h, b = item.replace(":", "x").split("x")
            sizes.append((int(h), int(b)))
        else:
            h = int(item)
            sizes.append((h, DEFAULT_BATCH.get(h, 64)))
    if not sizes:
        raise SystemExit("--sizes names no size")
    return sizes


def blas_info() -> tuple[str, int | None, object]:
    """(description, thread count, threadpool limiter factory or None) for NumPy's BLAS."""
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        return "threadpoolctl not importable (BLAS threads unknown)", None, None
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    if not blas:
        return "no BLAS found by threadpoolctl", None, threadpool_limits
    desc = ", ".join(
        f"{i.get('internal_api')} {i.get('version')} ({i.get('architecture')}, "
        f"{i.get('threading_layer')}) threads={i.get('num_threads')}"
        for i in blas
    )
    return desc, int(blas[0]["num_threads"]), threadpool_limits


class Batches:
    """A fixed cycle of (ids, targets) chunks of shape (B, T): random ids or a text's streams."""

    def __init__(self, B: int, T: int, V: int, text_ids: np.ndarray | None, seed: int, count: int = 16):
        if text_ids is not None:
            batcher = charnn_module("data.corpus").StreamBatcher(text_ids, B, T)
            n = min(count, batcher.num_chunks)
            chunks = [batcher.chunk(i) for i in range(n)]
        else:
            rng = np.random.default_rng(seed)
            chunks = []
            for _ in range(count):
                stream = rng.integers(0, V, (B, T + 1), dtype=np.int64)
                chunks.append((stream[:, :-1], stream[:, 1:]))
        self.chunks = [(np.ascontiguousarray(a), np.ascontiguousarray(b)) for a, b in chunks]
        self.i = 0

    def next(self):
        chunk = self.chunks[self.i % len(self.chunks)]
        self.i += 1
        return chunk


# ---- the two steps --------------------------------------------------------------------------


class NumpyStep:
    """charnn's training step: train_step where the checkout has the cell interface, else the
    forward / backward / clip / update it used to spell out (so older checkouts can be timed)."""

    def __init__(self, H: int, B: int, T: int, V: int, batches: Batches, seed: int, cell: str = "rnn"):
        m = charnn_model
        self.cell = cell
        kw = {"cell": cell} if cell != "rnn" else {}  # checkouts from before the gated cells had no such argument
        self.params = m.init_params(V, H, 1, rng=np.random.default_rng(seed), dtype=np.float32, **kw)
        self.batches = batches
        self.loss = float("nan")
        try:
            from charnn.config import ModelConfig, TrainConfig

            loop = charnn_module("training.loop")
            TrainState, optimizer_spec, train_step = loop.TrainState, loop.optimizer_spec, loop.train_step
            Workspace = charnn_module("nn.workspace").Workspace

            self.new_api = "ws" in inspect.signature(train_step).parameters
        except ImportError:
            self.new_api = False
        if self.new_api:
            Progress = charnn_module("training.checkpoint").Progress

            self.t, self.m = TrainConfig(grad_clip=CLIP, lr=LR), ModelConfig(cell=cell, hidden_size=H)
            self.spec, self.ws, self.train_step = optimizer_spec(self.t), Workspace(), train_step
            self.state = TrainState(self.params, init_state(self.spec, self.params),
                                    m.zero_state(self.params, B, cell), np.random.default_rng(seed), Progress())
        else:
            self.spec = OptimizerSpec("adam")
            self.optim_state = init_state(self.spec, self.params)
            self.h = m.zero_state(self.params, B)

    def __call__(self) -> None:
        ids, targets = self.batches.next()
        if self.new_api:
            self.loss = self.train_step(self.state, ids, targets, self.spec, LR, self.t, self.m, self.ws).loss
            return
        m = charnn_model
        loss, self.h, cache = m.forward(self.params, ids, targets, self.h)
        grads, _ = m.backward(self.params, cache)
        del cache  # back to the old checkouts' pool
        clip_gradients(grads, CLIP, "norm")
        apply_update(self.spec, self.params, grads, self.optim_state, LR)
        self.loss = loss

    def sync(self) -> None:
        pass


class BaselineWorker:
    """The same step of another checkout, in a worker process driven line by line over a pipe."""

    def __init__(self, checkout: str, args, H: int, B: int):
        import subprocess

        cmd = [sys.executable, "-u", __file__, "--worker", "--checkout", checkout, "--cell", args.cell,
               "--seq-len", str(args.seq_len), "--vocab", str(args.vocab), "--seed", str(args.seed),
               "--warmup", str(args.warmup), "--repeat-seconds", str(args.repeat_seconds)]
        if args.text:
            cmd += ["--text", args.text]
        self.proc = subprocess.Popen(cmd + ["--sizes", f"{H}x{B}"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.n = int(self._ask("setup"))
        self.loss = float("nan")

    def _ask(self, line: str) -> str:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"the baseline worker stopped (exit {self.proc.wait()})")
        return answer.strip()

    def time(self, n: int) -> float:
        seconds, self.loss = map(float, self._ask(f"time {n}").split())
        return seconds

    def close(self) -> None:
        self._ask("quit")
        self.proc.wait()


def worker(args) -> int:
    """--worker: answer `setup`, `time N` and `quit` lines for one size (see BaselineWorker)."""
    (H, B), = parse_sizes(args.sizes)
    step = None
    for line in sys.stdin:
        command = line.split()
        if command[0] == "setup":
            step = NumpyStep(H, B, args.seq_len, args.vocab, Batches(B, args.seq_len, args.vocab, None, args.seed),
                             args.seed, args.cell)
            print(steps_for(step, args.repeat_seconds, args.warmup), flush=True)
        elif command[0] == "time":
            dt = time_steps(step, int(command[1]))
            print(dt, step.loss, flush=True)
        else:
            print("bye", flush=True)
            return 0
    return 0


class TorchStep:
    def __init__(self, torch, H: int, B: int, T: int, V: int, batches: Batches, seed: int, cell: str = "rnn"):
        self.torch = torch
        nn = torch.nn
        torch.manual_seed(seed)
        self.V = V
        if cell == "rnn":
            self.rnn = nn.RNN(V, H, num_layers=1, nonlinearity="tanh", batch_first=True)
        else:
            self.rnn = (nn.LSTM if cell == "lstm" else nn.GRU)(V, H, num_layers=1, batch_first=True)
        self.head = nn.Linear(H, V)
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=LR)
        self.h = (torch.zeros(1, B, H), torch.zeros(1, B, H)) if cell == "lstm" else torch.zeros(1, B, H)
        self.batches = [
            (torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(tg.astype(np.int64)).reshape(-1))
            for ids, tg in batches.chunks
        ]
        self.i = 0
        self.loss = float("nan")

    def __call__(self) -> None:
        torch = self.torch
        ids, targets = self.batches[self.i % len(self.batches)]
        self.i += 1
        x = torch.nn.functional.one_hot(ids, self.V).to(torch.float32)  # (B, T, V)
        out, h = self.rnn(x, self.h)
        logits = self.head(out)  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.V), targets)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, CLIP)
        self.opt.step()
        self.h = tuple(x.detach() for x in h) if isinstance(h, tuple) else h.detach()
        self.loss = loss.item()

    def sync(self) -> None:
        pass


# ---- timing ---------------------------------------------------------------------------------


class OtherLoad:
    """CPU time used by other processes while timing (Linux /proc/stat), as a fraction of the machine.

    Timings are only comparable on an otherwise idle machine; this says when it wasn't.
    """

    def __init__(self, own_pids: tuple[int, ...] = ()) -> None:
        self.ok = os.path.exists("/proc/stat")
        self.own_pids = own_pids  # our own worker processes (a --baseline worker) are not "others"
        self.start()

    def _own(self) -> float:
        t = os.times()
        total = t.user + t.system
        for pid in self.own_pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        return total

    @staticmethod
    def _busy() -> float:
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait

    def start(self) -> None:
        if self.ok:
            self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), self._own()

    def fraction(self) -> float | None:
        if not self.ok:
            return None
        wall = (time.perf_counter() - self.t0) * (os.cpu_count() or 1)
        others = (self._busy() - self.busy0) - (self._own() - self.own0)
        return max(0.0, others / wall) if wall > 0 else None


def time_steps(step, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    return time.perf_counter() - t0


def steps_for(step, target_s: float, warmup: int) -> int:
    """Warm up, then pick how many steps make one repeat last about target_s."""
    for _ in range(max(0, warmup - 1)):
        step()
    dt = time_steps(step, 1)
    return max(1, int(round(target_s / max(dt, 1e-9))))


def measure_peak(n: int, repeats: int = 7) -> float:
    """float32 GEMM GFLOP/s: the best of `repeats` n x n @ n x n products (noise only slows)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    np.matmul(a, b, out=c)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        np.matmul(a, b, out=c)
        times.append(time.perf_counter() - t0)
    return 2.0 * n**3 / min(times) / 1e9


# ---- sampling -------------------------------------------------------------------------------


def local_sample(params, model, start_id: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """One stream, one character at a time, multinomial sampling at temperature 1."""
    W_xh, W_hh, b_h = params["rnn.0.W_xh"], params["rnn.0.W_hh"], params["rnn.0.b_h"]
    W_hy, b_y = params["head.W_hy"], params["head.b_y"]
    H = W_hh.shape[0]
    h = np.zeros(H, np.float32)
    pre = np.empty(H, np.float32)
    logits = np.empty(W_hy.shape[1], np.float32)
    out = np.empty(n, np.int64)
    u = rng.random(n)
    idx = start_id
    for i in range(n):
        np.matmul(h, W_hh, out=pre)
        pre += W_xh[idx]
        pre += b_h
        np.tanh(pre, out=h)
        np.matmul(h, W_hy, out=logits)
        logits += b_y
        logits -= logits.max()
        np.exp(logits, out=logits)
        c = np.cumsum(logits)
        idx = min(int(np.searchsorted(c, u[i] * c[-1], side="right")), len(c) - 1)
        out[i] = idx
    return out


def project_sampler():
    """A sampling function from charnn.nn.sampling, if that module exists and offers one."""
    try:
        mod = charnn_module("nn.sampling")
    except ImportError:
        return None, "charnn.nn.sampling not found"
    for name in ("sample_ids", "sample", "generate"):
        fn = getattr(mod, name, None)
        if callable(fn):
            return fn, f"charnn.nn.sampling.{name}"
    return None, "charnn.nn.sampling has no sample_ids/sample/generate"


def call_project_sampler(fn, params, n: int, seed: int):
    """Try to call fn with the arguments its signature names; None if it doesn't fit."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    Vocab = charnn_module("data.vocab").Vocab
    V = params["head.W_hy"].shape[1]
    known = {
        "params": params,
        "cell": "rnn",
        "vocab": Vocab(tuple(chr(0x100 + i) for i in range(V))),
        "prime": "",
        "n": n,
        "length": n,
        "num_chars": n,
        "max_chars": n,
        "num_samples": n,
        "count": n,
        "rng": np.random.default_rng(seed),
        "seed": seed,
        "temperature": 1.0,
        "start_id": 0,
        "start": 0,
        "prime_ids": np.zeros(1, np.int64),
    }
    kwargs, positional = {}, []
    for p in sig.parameters.values():
        if p.name in known:
            if p.kind is p.POSITIONAL_ONLY:
                positional.append(known[p.name])
            else:
                kwargs[p.name] = known[p.name]
        elif p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            return None  # a required argument we can't supply
    try:
        out = fn(*positional, **kwargs)
        if inspect.isgenerator(out) or hasattr(out, "__next__"):
            out = list(out)  # a lazy generator does its work only when consumed
        return out
    except Exception:  # noqa: BLE001 - any mismatch means "use the local loop"
        return None


def bench_sampling(model, V: int, H: int, n: int, seed: int) -> None:
    params = model.init_params(V, H, 1, rng=np.random.default_rng(seed), dtype=np.float32)
    fn, where = project_sampler()
    if fn is not None:
        if call_project_sampler(fn, params, 50, seed) is not None:
            t0 = time.perf_counter()
            call_project_sampler(fn, params, n, seed)
            dt = time.perf_counter() - t0
            print(f"sampling  H={H} V={V} 1 stream, {where}: {n / dt:,.0f} chars/s ({n} chars)")
            return
        where += " (signature not understood)"
    local_sample(params, model, 0, 50, np.random.default_rng(seed))
    t0 = time.perf_counter()
    local_sample(params, model, 0, n, np.random.default_rng(seed))
    dt = time.perf_counter() - t0
    print(f"sampling  H={H} V={V} 1 stream, local per-step loop ({where}): {n / dt:,.0f} chars/s ({n} chars)")


# ---- main -----------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help=f"HxB list (default {DEFAULT_SIZES})")
    ap.add_argument("--seq-len", "-T", type=int, default=64)
    ap.add_argument("--vocab", "-V", type=int, default=65, help="vocabulary size for random ids")
    ap.add_argument("--text", help="train on this text's ids (e.g. /work/shared/data/tinyshakespeare.txt)")
    ap.add_argument("--repeats", type=int, default=11, help="timed repeats per size and framework")
    ap.add_argument("--repeat-seconds", type=float, default=0.4, help="about how long one repeat runs")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps before timing")
    ap.add_argument("--threads", type=int, help="BLAS / torch threads (default: NumPy BLAS's current count)")
    ap.add_argument("--settle", type=float, default=0.2,
                    help="seconds of sleep before each repeat when switching frameworks (default 0.2)")
    ap.add_argument("--baseline", metavar="DIR", help="also time this checkout's step (e.g. a git worktree of an "
                    "earlier commit), interleaved, and print new/baseline")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--checkout", help=argparse.SUPPRESS)
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    ap.add_argument("--peak-size", type=int, default=2048, help="n of the n x n GEMM peak measurement")
    ap.add_argument("--sample-hidden", type=int, default=512)
    ap.add_argument("--sample-chars", type=int, default=3000, help="0 skips the sampling measurement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cell", default="rnn", choices=["rnn", "lstm", "gru"],
                    help="recurrent cell; compared with torch.nn.RNN, nn.LSTM or nn.GRU")
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    sizes = parse_sizes(args.sizes)
    T = args.seq_len
    model = charnn_model

    text_ids = None
    V = args.vocab
    if args.text:
        Vocab = charnn_module("data.vocab").Vocab
        text = Path(args.text).read_text(encoding="utf-8")
        vocab = Vocab.from_text(text)
        text_ids = vocab.encode(text)
        V = vocab.size

    desc, blas_threads, limits = blas_info()
    threads = args.threads or blas_threads or os.cpu_count() or 1
    limiter = limits(limits=threads, user_api="blas") if (limits and args.threads) else None

    torch = None
    torch_note = "not importable (skipped)"
    if not args.no_torch:
        try:
            import torch as _torch

            torch = _torch
            torch.set_num_threads(threads)
            torch_note = f"{torch.__version__}, threads={torch.get_num_threads()}"
        except ImportError:
            pass
    else:
        torch_note = "skipped (--no-torch)"

    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))}
    print("charnn training-step benchmark")
    print(f"  python {platform.python_version()}, numpy {np.__version__}, machine {platform.machine()}, "
          f"cpus {os.cpu_count()}")
    print(f"  BLAS: {desc}" + (f" -> limited to {threads}" if limiter else ""))
    print(f"  torch: {torch_note}")
    if env:
        print(f"  env: {' '.join(f'{k}={v}' for k, v in sorted(env.items()))}")
    print(f"  charnn: {Path(charnn.__file__).parent.parent}" + (f"; baseline: {args.baseline}" if args.baseline else ""))
    print(f"  data: {'text ' + args.text if args.text else 'random ids'}, T={T}, V={V}, float32, 1 layer, "
          f"cell {args.cell}, adam lr={LR}, clip norm {CLIP}")
    peak = measure_peak(args.peak_size)
    print(f"  float32 GEMM peak ({args.peak_size}^3 matmul): {peak:,.1f} GFLOP/s")
    print(f"  {args.repeats} repeats of ~{args.repeat_seconds}s each, median reported"
          + (", NumPy and torch repeats interleaved (np/torch: ratio of the medians; paired: median "
             "ratio of back-to-back repeats)" if torch else ""))
    print()

    header = f"{'H':>5} {'B':>4} {'numpy chars/s':>14} {'GFLOP/s':>8} {'%peak':>6}"
    if args.baseline:
        header += f" {'baseline':>14} {'new/base':>8} {'paired':>7}"
    if torch:
        header += f" {'torch chars/s':>14} {'GFLOP/s':>8} {'np/torch':>8} {'paired':>7}"
    print(header)
    results = []
    for H, B in sizes:
        batches = Batches(B, T, V, text_ids, args.seed)
        chars = B * T
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[args.cell]
        flops_per_char = 6.0 * (gates * H * H + H * V)  # recurrent GEMMs and the head; the input is a lookup
        np_step = NumpyStep(H, B, T, V, batches, args.seed, args.cell)
        runners = {"np": (lambda n: time_steps(np_step, n), steps_for(np_step, args.repeat_seconds, args.warmup))}
        base = BaselineWorker(args.baseline, args, H, B) if args.baseline else None
        if base:
            runners["base"] = (base.time, base.n)
        if torch:
            th_step = TorchStep(torch, H, B, T, V, Batches(B, T, V, text_ids, args.seed), args.seed, args.cell)
            runners["th"] = (lambda n: time_steps(th_step, n), steps_for(th_step, args.repeat_seconds, args.warmup))
        rates = {kind: [] for kind in runners}
        load = OtherLoad((base.proc.pid,) if base else ())
        for r in range(args.repeats):
            order = list(runners.items())
            order = order[r % len(order):] + order[:r % len(order)]  # rotate: none always follows another
            for kind, (run, n) in order:
                if torch and args.settle > 0:
                    time.sleep(args.settle)  # let the other library's worker threads stop spinning
                rates[kind].append(n * chars / run(n))
        others = load.fraction()
        if base:
            base.close()
        np_rates, th_rates = rates["np"], rates.get("th", [])
        np_rate = statistics.median(np_rates)
        gflops = np_rate * flops_per_char / 1e9
        line = f"{H:>5} {B:>4} {np_rate:>14,.0f} {gflops:>8.1f} {100 * gflops / peak:>5.1f}%"
        if base:
            base_rate = statistics.median(rates["base"])
            paired = statistics.median(a / b for a, b in zip(np_rates, rates["base"]))
            line += f" {base_rate:>14,.0f} {np_rate / base_rate:>8.3f} {paired:>7.3f}"
        th_rate = None
        if torch:
            th_rate = statistics.median(th_rates)
            th_gflops = th_rate * flops_per_char / 1e9
            paired = statistics.median(a / b for a, b in zip(np_rates, th_rates))
            line += f" {th_rate:>14,.0f} {th_gflops:>8.1f} {np_rate / th_rate:>8.2f} {paired:>7.2f}"
        print(line, flush=True)
        if not np.isfinite(np_step.loss):
            print(f"      warning: NumPy loss is {np_step.loss}")
        if others is not None and others > 0.05:
            print(f"      warning: other processes used {100 * others:.0f}% of the CPUs meanwhile; "
                  "these numbers are unreliable, rerun on an idle machine")
        spread = (max(np_rates) - min(np_rates)) / np_rate
        if spread > 0.15:
            print(f"      note: NumPy repeats spread {100 * spread:.0f}% of the median")
        results.append((H, B, np_rate, th_rate))

    if args.sample_chars > 0:
        print()
        bench_sampling(model, V, args.sample_hidden, args.sample_chars, args.seed)
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
