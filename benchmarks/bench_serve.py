#!/usr/bin/env python
"""charnn serve under load: one client, then 8, 32 and 128 concurrent streaming clients, against
the ceiling of the model's batched step alone; and the server's memory over many requests.

    python benchmarks/bench_serve.py                          # an H=512 LSTM, as issue #27 asks
    python benchmarks/bench_serve.py --hidden 128 --requests 2000

Builds a model of random weights (speed does not depend on training) with Tiny Shakespeare's
65-character vocabulary, starts `charnn serve` on it in a process of its own, and drives it with
bare asyncio clients in this process (on a 2-core machine the clients share the CPU with the
server: their cost is part of the figures, kept small). Prints: chars/s of one streaming client; for
8, 32 and 128 clients, the aggregate chars/s and the p50 / p99 time to first character; the
ceiling, chars/s of the model's batched step on a (32, H) batch alone (no server, no sampling);
the server's RSS before and after --requests short requests; and whether any request failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import charnn

VOCAB = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def make_checkpoint(folder: Path, cell: str, hidden: int, layers: int) -> Path:
    model = charnn.init_model({"data": {"text": VOCAB}, "model": {"cell": cell, "hidden_size": hidden,
                                                                 "num_layers": layers}, "run": {"name": "bench"}},
                              init_std=1.0 / np.sqrt(hidden), vocabulary=VOCAB)
    return charnn.export(model, folder / "bench.safetensors", format="safetensors").path


def ceiling(path: Path, batch: int = 32, steps: int = 300) -> float:
    """chars/s of the batched step alone: `batch` streams, one character each per step, on the
    server's BLAS thread budget."""
    from threadpoolctl import threadpool_limits

    from charnn.serve.server import blas_threads

    with threadpool_limits(limits=blas_threads(), user_api="blas"):
        return _ceiling(path, batch, steps)


def _ceiling(path: Path, batch: int, steps: int) -> float:
    from charnn.nn.sampling import BatchReader

    model = charnn.load(path)
    reader = BatchReader(model.params, model.cell)
    for _ in range(batch):
        reader.add()
    ids = np.zeros(batch, dtype=np.int64)
    for _ in range(20):
        reader.logits(ids)
    start = time.perf_counter()
    for _ in range(steps):
        reader.logits(ids)
    return batch * steps / (time.perf_counter() - start)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def stream_one(url: str, chars: int) -> tuple[float, float, int]:
    """(time to first character, total time, characters) of one streamed completion, read with a
    bare asyncio HTTP/1.1 client (an HTTP library's per-chunk cost would be the client's, on the
    server's CPU: this one parses only the events' JSON)."""
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"prompt": "The ", "max_tokens": chars, "stream": True}).encode()
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
    status = (await reader.readline()).split()[1]
    if status != b"200":
        raise RuntimeError(f"HTTP {status.decode()}")
    first, got, buffer = None, 0, b""
    while True:
        block = await reader.read(65536)
        if not block:
            break
        buffer += block
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data: {"):
                got += len(json.loads(line[6:])["choices"][0]["text"])
                if first is None and got:
                    first = time.perf_counter() - start
    writer.close()
    if got != chars:
        raise RuntimeError(f"{got} characters instead of {chars}")
    return first, time.perf_counter() - start, got


async def load(url: str, clients: int, chars: int) -> dict:
    start = time.perf_counter()
    results = await asyncio.gather(*(stream_one(url, chars) for _ in range(clients)), return_exceptions=True)
    wall = time.perf_counter() - start
    failed = [r for r in results if isinstance(r, Exception)]
    ok = [r for r in results if not isinstance(r, Exception)]
    firsts = sorted(r[0] for r in ok)
    return {"clients": clients, "chars_per_s": sum(r[2] for r in ok) / wall, "failed": len(failed),
            "ttfc_p50": statistics.median(firsts) if firsts else None,
            "ttfc_p99": firsts[min(len(firsts) - 1, int(0.99 * len(firsts)))] if firsts else None,
            "errors": [str(e) for e in failed[:3]]}


async def many_requests(url: str, total: int, concurrency: int) -> int:
    import httpx

    failures = 0
    queue = asyncio.Queue()
    for _ in range(total):
        queue.put_nowait(None)

    async def worker(client):
        nonlocal failures
        while not queue.empty():
            queue.get_nowait()
            r = await client.post(url + "/v1/completions", json={"prompt": "To be", "max_tokens": 10})
            failures += r.status_code != 200

    async with httpx.AsyncClient(timeout=600) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return failures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", default="lstm", choices=["rnn", "lstm", "gru"])
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--chars", type=int, default=1000, help="characters per streaming client")
    ap.add_argument("--clients", default="8,32,128")
    ap.add_argument("--requests", type=int, default=10_000, help="short requests for the memory check (0: skip)")
    args = ap.parse_args()
    print(f"charnn {charnn.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="charnn-bench-serve-") as tmp:
        path = make_checkpoint(Path(tmp), args.cell, args.hidden, args.layers)
        print(f"model: {args.cell}, {args.layers} x {args.hidden} units, vocabulary {len(VOCAB)}; "
              f"clients stream {args.chars} characters each (prompt 'The ', no seed: the shared batch)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen([sys.executable, "-m", "charnn", "serve", str(path), "--port", str(port),
                                 "--max-streams", "512", "--max-tokens", "100000"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            import httpx

            for _ in range(300):
                try:
                    httpx.get(url + "/health", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            rss_start = rss_mb(proc.pid)
            top = ceiling(path)
            one = asyncio.run(load(url, 1, args.chars * 2))
            print(f"one client:       {one['chars_per_s']:9,.0f} chars/s   first character after "
                  f"{1000 * one['ttfc_p50']:.1f} ms")
            for n in [int(c) for c in args.clients.split(",")]:
                r = asyncio.run(load(url, n, args.chars))
                print(f"{n:3d} clients:      {r['chars_per_s']:9,.0f} chars/s   ({r['chars_per_s'] / one['chars_per_s']:.1f}x "
                      f"one client, {100 * r['chars_per_s'] / top:.0f}% of the ceiling)   first character p50 "
                      f"{1000 * r['ttfc_p50']:.0f} ms, p99 {1000 * r['ttfc_p99']:.0f} ms   failed: {r['failed']}"
                      + (f" {r['errors']}" if r["errors"] else ""))
            from charnn.serve.server import blas_threads

            print(f"ceiling:          {top:9,.0f} chars/s   (the batched step alone on a (32, {args.hidden}) batch, "
                  f"{blas_threads()} BLAS thread(s) as the server uses)")
            rss_mid = rss_mb(proc.pid)
            if args.requests:
                start = time.perf_counter()
                failed = asyncio.run(many_requests(url, args.requests, 32))
                print(f"{args.requests:,} requests of 10 characters (32 at a time) in {time.perf_counter() - start:.1f} s,"
                      f" failed: {failed}")
            print(f"server RSS: {rss_start:.0f} MB at start, {rss_mid:.0f} MB after the load runs, "
                  f"{rss_mb(proc.pid):.0f} MB after the requests ({rss_mb(proc.pid) - rss_mid:+.1f} MB)")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
