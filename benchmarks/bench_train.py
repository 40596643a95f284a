#!/usr/bin/env python
"""Training throughput of charnn's full step, in characters per second, with PyTorch as a yardstick.

One training step is exactly what the trainer does per chunk, charnn.training.loop.train_step:
forward, backward, a finiteness guard, clip_gradients(grads, 5.0, "norm") and an Adam update,
with the trainer's reusable workspace, B*T characters per step, float32, a single layer, T=64 and V=65 by default. For each
(H, B) size the script prints the median chars/s over several timed repeats (after warm-up),
the implied GFLOP/s (6*(H^2 + H*V) FLOPs per character: 2 forward, 4 backward, for the
recurrent and the head matrices; the layer-0 input lookup costs no FLOPs) and that rate as a
fraction of a float32 GEMM peak measured here with a large square matmul.

Both of charnn's paths are timed (train.kernels): NumPy's and, when the `fast` extra (Numba) is
installed, the fast kernels' (charnn/nn/fast), their repeats interleaved; the header and every
row say which ran (--kernels numpy|fast|both). --above-gemm adds, for the fast path, its step
time above the time its matrix products take alone, per time step.

When torch is importable the equivalent PyTorch step (nn.RNN tanh on one-hot inputs,
batch_first, nn.Linear head, cross-entropy, clip_grad_norm_(5), Adam, state carried and
detached across steps) is timed in the same run, its repeats interleaved with NumPy's, with
torch.set_num_threads set to the BLAS thread count. PyTorch is never a charnn dependency.

Finally the speed of sampling is measured: one stream of a 512-unit model of --cell, read by
charnn.nn.sampling.Reader and drawn by choose, as Model.sample does, on NumPy and on the kernels.

    python benchmarks/bench_train.py                        # all sizes, random ids
    python benchmarks/bench_train.py --sizes 128x32,512x64  # a subset
    python benchmarks/bench_train.py --text data/tinyshakespeare.txt
    python benchmarks/bench_train.py --baseline /path/to/old/checkout  # before/after, same run
    python benchmarks/bench_train.py --cell lstm --sizes 512x32 --above-gemm

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

    def __init__(self, H: int, B: int, T: int, V: int, batches: Batches, seed: int, cell: str = "rnn", fast=None):
        m = charnn_model
        self.cell, self.fast = cell, fast  # fast: charnn.nn.fast.model, to step on the kernels
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
            kw = {"fast": self.fast} if self.fast is not None else {}
            self.loss = self.train_step(self.state, ids, targets, self.spec, LR, self.t, self.m, self.ws, **kw).loss
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


# ---- the fast path --------------------------------------------------------------------------


def load_fast(wanted: str):
    """(charnn.nn.fast.model or None, what to print about it) for --kernels."""
    if wanted == "numpy":
        return None, "numpy (--kernels numpy)"
    try:
        fast = importlib.import_module("charnn.nn.fast")
    except ImportError:
        return None, "numpy (this checkout has no charnn.nn.fast)"
    try:
        module = fast.load()
    except fast.Unavailable as e:
        if wanted == "fast":
            raise SystemExit(f"--kernels fast: {e}") from None
        return None, f"numpy only: the fast path cannot run ({e})"
    import numba

    t0 = time.perf_counter()
    for cell in fast.CELLS:
        fast.warm_up(cell)
    what = f"charnn.nn.fast (numba {numba.__version__}, kernels ready in {time.perf_counter() - t0:.1f} s)"
    return module, (f"fast: {what}" if wanted == "fast" else f"numpy and fast, interleaved: {what}")


def gemm_alone_s(cell: str, H: int, B: int, T: int, V: int, reps: int = 40) -> float:
    """The matrix products of one fast step, each timed alone (medians), summed over a chunk: per
    time step the forward h W_rec and the backward product (by the route the step takes), then
    the chunk's dW_rec and the head's three products."""
    from charnn.nn.fast.cells import BackProduct
    from charnn.nn.workspace import Workspace

    k, f = {"lstm": 4, "gru": 3, "rnn": 1}[cell], np.float32
    rng = np.random.default_rng(0)
    h, W, da = (rng.standard_normal(s, dtype=f) for s in ((B, H), (H, k * H), (B, k * H)))
    hs, das, dlog = (rng.standard_normal(s, dtype=f) for s in ((T * B, H), (T * B, k * H), (T * B, V)))
    Why = rng.standard_normal((H, V), dtype=f)
    ha, dh, dW = np.empty((B, k * H), f), np.empty((B, H), f), np.empty((H, k * H), f)
    logits, dx, gW = np.empty((T * B, V), f), np.empty((T * B, H), f), np.empty((H, V), f)
    back = BackProduct(W, B, Workspace())

    def med(fn, n):
        fn()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    per_t = med(lambda: np.matmul(h, W, out=ha), reps * 4) + med(lambda: back(da, dh), reps * 4)
    chunk = (med(lambda: np.matmul(hs.T, das, out=dW), reps) + med(lambda: np.matmul(hs, Why, out=logits), reps)
             + med(lambda: np.matmul(hs.T, dlog, out=gW), reps) + med(lambda: np.matmul(dlog, Why.T, out=dx), reps))
    return T * per_t + chunk


# ---- sampling -------------------------------------------------------------------------------


def sample_rate(params, cell: str, n: int, seed: int, kernels: str) -> float:
    """Characters per second of one stream read and drawn as Model.sample does (Reader, choose)."""
    sampling = charnn_module("nn.sampling")
    kw = {} if kernels == "numpy" else {"kernels": kernels}  # a checkout before the choice reads on NumPy
    reader, rng, current = sampling.Reader(params, cell, **kw), np.random.default_rng(seed), 0
    t0 = time.perf_counter()
    for _ in range(n):
        current = sampling.choose(reader.logits(current), 1.0, 0, False, rng, **kw)
    return n / (time.perf_counter() - t0)


def bench_sampling(cell: str, V: int, H: int, n: int, seed: int, fast, repeats: int = 7) -> None:
    kw = {"cell": cell} if cell != "rnn" else {}
    params = charnn_model.init_params(V, H, 1, rng=np.random.default_rng(seed), dtype=np.float32, **kw)
    if not hasattr(charnn_module("nn.sampling"), "Reader"):
        print(f"sampling  H={H} V={V}: this checkout has no charnn.nn.sampling.Reader (skipped)")
        return
    rates = {"numpy": [], "fast": []} if fast is not None else {"numpy": []}
    for r in range(repeats):
        for kind in (list(rates) if r % 2 == 0 else list(rates)[::-1]):
            rates[kind].append(sample_rate(params, cell, n, seed + r, kind))
    line = ", ".join(f"{kind} {statistics.median(v):,.0f} chars/s" for kind, v in rates.items())
    if fast is not None:
        ratio = statistics.median(rates["fast"]) / statistics.median(rates["numpy"])
        line += f": fast/numpy {ratio:.2f}x"
    print(f"sampling  {cell} H={H} V={V}, one stream (Reader + choose, {n} chars, {repeats} interleaved repeats): {line}")


# ---- main -----------------------------------------------------------------------------------


def parse_args(argv):
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
    ap.add_argument("--kernels", default="both", choices=["numpy", "fast", "both"],
                    help="which of charnn's paths to time (default both: NumPy and, where Numba is installed, the "
                    "fast kernels)")
    ap.add_argument("--above-gemm", action="store_true",
                    help="also print the fast step's time above its matrix products alone, per time step")
    ap.add_argument("--no-torch", action="store_true", help="skip the PyTorch comparison")
    ap.add_argument("--peak-size", type=int, default=2048, help="n of the n x n GEMM peak measurement")
    ap.add_argument("--sample-hidden", type=int, default=512)
    ap.add_argument("--sample-chars", type=int, default=3000, help="0 skips the sampling measurement")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cell", default="rnn", choices=["rnn", "lstm", "gru"],
                    help="recurrent cell; compared with torch.nn.RNN, nn.LSTM or nn.GRU")
    return ap.parse_args(argv)


def load_torch(args, threads: int):
    if args.no_torch:
        return None, "skipped (--no-torch)"
    try:
        import torch
    except ImportError:
        return None, "not importable (skipped)"
    torch.set_num_threads(threads)
    return torch, f"{torch.__version__}, threads={torch.get_num_threads()}"


def print_header(args, desc, limiter, threads, torch_note, kernels_note, T, V, peak, torch) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_", "NUMBA", "CHARNN"))}
    print("charnn training-step benchmark")
    print(f"  python {platform.python_version()}, numpy {np.__version__}, machine {platform.machine()}, "
          f"cpus {os.cpu_count()}")
    print(f"  BLAS: {desc}" + (f" -> limited to {threads}" if limiter else ""))
    print(f"  torch: {torch_note}")
    print(f"  charnn kernels: {kernels_note}")
    if env:
        print(f"  env: {' '.join(f'{k}={v}' for k, v in sorted(env.items()))}")
    print(f"  charnn: {Path(charnn.__file__).parent.parent}" + (f"; baseline: {args.baseline}" if args.baseline else ""))
    print(f"  data: {'text ' + args.text if args.text else 'random ids'}, T={T}, V={V}, float32, 1 layer, "
          f"cell {args.cell}, adam lr={LR}, clip norm {CLIP}")
    print(f"  float32 GEMM peak ({args.peak_size}^3 matmul): {peak:,.1f} GFLOP/s")
    print(f"  {args.repeats} repeats of ~{args.repeat_seconds}s each, median reported; every runner's repeats "
          "interleaved (x/y: ratio of the medians; paired: median ratio of back-to-back repeats)")
    print()


def ratio_cells(rates: dict, a: str, b: str) -> str:
    paired = statistics.median(x / y for x, y in zip(rates[a], rates[b]))
    return f"{statistics.median(rates[a]) / statistics.median(rates[b]):>7.2f} {paired:>6.2f}"


def bench_size(args, H: int, B: int, T: int, V: int, text_ids, torch, fast, peak: float) -> None:
    """Time one size: every runner's repeats interleaved; print one row (and any warnings)."""
    steps = {}
    if args.kernels != "fast" or fast is None:
        steps["numpy"] = NumpyStep(H, B, T, V, Batches(B, T, V, text_ids, args.seed), args.seed, args.cell)
    if fast is not None:
        steps["fast"] = NumpyStep(H, B, T, V, Batches(B, T, V, text_ids, args.seed), args.seed, args.cell, fast)
    if torch:
        steps["torch"] = TorchStep(torch, H, B, T, V, Batches(B, T, V, text_ids, args.seed), args.seed, args.cell)
    runners = {k: (lambda n, st=st: time_steps(st, n), steps_for(st, args.repeat_seconds, args.warmup))
               for k, st in steps.items()}
    base = BaselineWorker(args.baseline, args, H, B) if args.baseline else None
    if base:
        runners["base"] = (base.time, base.n)
    rates = {kind: [] for kind in runners}
    load = OtherLoad((base.proc.pid,) if base else ())
    for r in range(args.repeats):
        order = list(runners.items())
        order = order[r % len(order):] + order[:r % len(order)]  # rotate: none always follows another
        for kind, (run, n) in order:
            if args.settle > 0 and len(order) > 1:
                time.sleep(args.settle)  # let the other runner's worker threads stop spinning
            rates[kind].append(n * B * T / run(n))
    others = load.fraction()
    if base:
        base.close()
    print(size_row(args, H, B, T, V, rates, peak), flush=True)
    for kind, st in steps.items():
        if not np.isfinite(st.loss):
            print(f"      warning: the {kind} loss is {st.loss}")
    if others is not None and others > 0.05:
        print(f"      warning: other processes used {100 * others:.0f}% of the CPUs meanwhile; "
              "these numbers are unreliable, rerun on an idle machine")
    mine = "fast" if "fast" in rates else "numpy"
    spread = (max(rates[mine]) - min(rates[mine])) / statistics.median(rates[mine])
    if spread > 0.15:
        print(f"      note: the {mine} repeats spread {100 * spread:.0f}% of the median")


def size_row(args, H: int, B: int, T: int, V: int, rates: dict, peak: float) -> str:
    """One row of the table: chars/s per runner, GFLOP/s of charnn's faster path, the ratios."""
    mine = "fast" if "fast" in rates else "numpy"
    flops_per_char = 6.0 * ({"rnn": 1, "lstm": 4, "gru": 3}[args.cell] * H * H + H * V)  # the input is a lookup
    gflops = statistics.median(rates[mine]) * flops_per_char / 1e9
    line = f"{H:>5} {B:>4} " + " ".join(f"{statistics.median(rates[k]):>14,.0f}" for k in ("numpy", "fast", "torch")
                                          if k in rates)
    line += f" {gflops:>8.1f} {100 * gflops / peak:>5.1f}%"
    if "numpy" in rates and "fast" in rates:
        line += " " + ratio_cells(rates, "fast", "numpy")
    if "torch" in rates:
        line += " " + " ".join(ratio_cells(rates, k, "torch") for k in ("numpy", "fast") if k in rates)
    if "base" in rates:
        line += " " + ratio_cells(rates, mine, "base")
    if args.above_gemm and "fast" in rates:
        gemm = gemm_alone_s(args.cell, H, B, T, V)
        step_s = B * T / statistics.median(rates["fast"])
        line += f" {1e3 * gemm:>8.2f} {1e6 * (step_s - gemm) / T:>9.0f} us"
    return line


def table_header(args, fast, torch) -> str:
    kinds = [k for k, on in (("numpy", args.kernels != "fast" or fast is None), ("fast", fast is not None),
                             ("torch", torch is not None)) if on]
    header = f"{'H':>5} {'B':>4} " + " ".join(f"{k + ' chars/s':>14}" for k in kinds)
    header += f" {'GFLOP/s':>8} {'%peak':>6}"
    if "numpy" in kinds and "fast" in kinds:
        header += f" {'fast/np':>7} {'paired':>6}"
    if torch:
        header += "".join(f" {name + '/torch':>7} {'paired':>6}" for k, name in (("numpy", "np"), ("fast", "fast"))
                          if k in kinds)
    if args.baseline:
        header += f" {'new/base':>8} {'paired':>6}"
    if args.above_gemm and fast is not None:
        header += f" {'GEMM ms':>8} {'above GEMM/t':>12}"
    return header


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    sizes, T, V, text_ids = parse_sizes(args.sizes), args.seq_len, args.vocab, None
    if args.text:
        Vocab = charnn_module("data.vocab").Vocab
        text = Path(args.text).read_text(encoding="utf-8")
        vocab = Vocab.from_text(text)
        text_ids, V = vocab.encode(text), vocab.size
    desc, blas_threads, limits = blas_info()
    threads = args.threads or blas_threads or os.cpu_count() or 1
    limiter = limits(limits=threads, user_api="blas") if (limits and args.threads) else None
    torch, torch_note = load_torch(args, threads)
    fast, kernels_note = load_fast(args.kernels)
    peak = measure_peak(args.peak_size)
    print_header(args, desc, limiter, threads, torch_note, kernels_note, T, V, peak, torch)
    print(table_header(args, fast, torch))
    for H, B in sizes:
        bench_size(args, H, B, T, V, text_ids, torch, fast, peak)
    if args.sample_chars > 0:
        print()
        bench_sampling(args.cell, V, args.sample_hidden, args.sample_chars, args.seed, fast)
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
