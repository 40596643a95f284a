"""charnn sweep against a real PostgreSQL server: N worker processes share one study.

Starts a throwaway server on this machine (initdb + pg_ctl in a temporary folder, as a
non-root user: the `postgres` user when run as root), writes a tiny corpus, base config and
sweep file, runs N separate `python -m charnn sweep ... --storage postgresql://...`
processes at once, and prints which process ran which trial, the final table and the time.
The server and its folder are removed at the end.

    python benchmarks/sweep_postgres.py --workers 2 --trials 8

Needs PostgreSQL's server binaries (Debian: apt-get install postgresql) and a driver
(pip install -e '.[postgres]'); the server helper is tests/pgserver.py, which the tests use too.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from pgserver import binary, postgres_server, unavailable  # noqa: E402  (the tests' server helper)


SWEEP = """
base: base.yaml
space:
  train.lr: {low: 1e-3, high: 1e-1, log: true}
  model.hidden_size: {choices: [16, 32]}
trials: 8
trial: {steps: 1000000, max_minutes: 0.02}
"""
BASE = """
data: {path: corpus.txt, val_fraction: 0.1}
train: {batch_size: 4, seq_len: 16, lr: 0.01}
run: {eval_every: 20, checkpoint_every: 50}
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        sys.exit(f"cannot run: {reason}")
    import optuna
    import psycopg2

    work = Path(tempfile.mkdtemp(prefix="charnn-pg-sweep-"))
    (work / "corpus.txt").write_text("the cat sat on the mat. the dog sat on the log. " * 200)
    (work / "base.yaml").write_text(textwrap.dedent(BASE))
    (work / "sweep.yaml").write_text(textwrap.dedent(SWEEP))
    print(f"postgres: {binary('pg_ctl')}, psycopg2 {psycopg2.__version__}, optuna {optuna.__version__}, "
          f"python {sys.version.split()[0]}")
    print(f"workers: {args.workers} separate processes, trials: {args.trials}, each about 1.2 s; folder {work}")
    with postgres_server() as url:
        print(f"server: {url}")
        sweep = [sys.executable, "-m", "charnn", "sweep", "sweep.yaml", "--storage", url, "--trials", str(args.trials)]
        subprocess.run([sys.executable, "-m", "charnn", "data", "prepare", "base.yaml", "--set", "run.dir=runs/sweep"],
                       cwd=work, check=True, capture_output=True)
        start = time.perf_counter()
        procs = [subprocess.Popen(sweep + ["--worker"], cwd=work, stderr=subprocess.PIPE, text=True)
                 for _ in range(args.workers)]
        for p in procs:
            _, err = p.communicate()
            print(f"worker pid {p.pid}: exit {p.returncode}")
            print(textwrap.indent(err.strip(), "    "))
        seconds = time.perf_counter() - start
        status = subprocess.run(sweep + ["--status"], cwd=work, capture_output=True, text=True)
        summary = json.loads(subprocess.run(sweep + ["--status", "--json"], cwd=work, capture_output=True,
                                            text=True).stdout)
        print(status.stdout)
        study = optuna.load_study(study_name="sweep", storage=url)
        by_pid: dict = {}
        for t in study.get_trials():
            by_pid.setdefault(t.user_attrs.get("pid"), []).append(t.number)
        print(f"trials by worker pid: {by_pid}")
        states = [t["state"] for t in summary["trials"]]
        print(f"{len(states)} trials ({', '.join(f'{states.count(s)} {s}' for s in sorted(set(states)))}) "
              f"in {seconds:.1f} s; run directories: {sorted(p.name for p in (work / 'runs' / 'sweep').glob('trial-*'))}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
