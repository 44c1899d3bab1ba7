"""Hot path, before and after: the same measurements on two source trees, interleaved.

Copy the baseline tree first (``cp -r src /tmp/base_src`` before changing anything), then
``python benchmarks/bench_hotpath.py --baseline-src /tmp/base_src``. Every measurement runs
in a fresh subprocess with ``PYTHONPATH`` pointing at one tree, alternating baseline and
current tree for ``--rounds`` rounds, so both see the same machine load; the figures
reported are medians and the ratio current / baseline of each.

Measured (the README's "Hot path" rows):

* ``sweep``: runs/s and client CPU per run of a 5,000-cell ``echo`` sweep @200 into a
  DuckDB file (shared mode, the default), and the same with ``exclusive_db=True``;
* ``cpu``: client CPU per tracked send through a sweep (2,000 sends @50 to the fake server,
  0 ms; ``cpu_send``: the same through 50 instances each awaiting ``inst.send()``) against
  bare aiohttp's CPU per request, measured in the same worker;
* ``latency``: the median latency one tracked send adds over an untracked one.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
KINDS = ("sweep", "sweep_exclusive", "cpu", "cpu_send", "latency")


def _worker(kind: str, n: int) -> dict[str, float]:
    sys.path.insert(0, str(HERE))
    if kind in ("sweep", "sweep_exclusive"):
        from bench_runlog import sweep_rate

        with tempfile.TemporaryDirectory(prefix="ps-hot-") as tmp:
            c0, t0 = time.process_time(), time.thread_time()
            rate, logged = sweep_rate(n, str(Path(tmp) / "runs.duckdb"), kind != "sweep")
            cpu, loop_cpu = time.process_time() - c0, time.thread_time() - t0
        if logged != n + 200:
            raise RuntimeError(f"{logged} rows logged, expected {n + 200}")
        # CPU covers the warm-up sweep (200 cells) and the session's setup as well
        # loop_cpu: the event loop's thread only (store, engine, row building), without the
        # writer thread's DuckDB work
        return {
            "runs_per_s": rate,
            "cpu_us_per_run": cpu / (n + 200) * 1e6,
            "loop_cpu_us_per_run": loop_cpu / (n + 200) * 1e6,
        }
    if kind in ("cpu", "cpu_send"):
        from _clients import measure
        from _common import FakeServerProcess

        client = "promptstate" if kind == "cpu" else "promptstate inst.send"
        with FakeServerProcess(0.0) as server:
            bare = measure("bare aiohttp", server, n, 50, warmup=50)
            tracked = measure(client, server, n, 50, warmup=50)
        return {
            "bare_cpu_us": bare.cpu_us,
            "tracked_cpu_us": tracked.cpu_us,
            "cpu_ratio": tracked.cpu_us / bare.cpu_us,
            "tracked_per_s": tracked.rate,
            "bare_per_s": bare.rate,
        }
    if kind == "latency":
        from bench_runlog import send_latency

        with tempfile.TemporaryDirectory(prefix="ps-hot-") as tmp:
            ms = send_latency(str(Path(tmp) / "runs.duckdb"), n)
        return {**ms, "added_ms": ms["tracked"] - ms["untracked"]}
    raise ValueError(kind)


def _run(src: str, kind: str, n: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src}
    out = subprocess.run(
        [sys.executable, __file__, "--worker", kind, "--n", str(n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Interleave baseline and current-tree workers; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-src", help="the baseline tree's src directory")
    parser.add_argument("--current-src", default=str(HERE.parent / "src"))
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(_worker(args.worker, args.n)))
        return 0
    if not args.baseline_src:
        parser.error("--baseline-src is required")
    sizes = {"sweep": 5000, "sweep_exclusive": 5000, "cpu": 2000, "cpu_send": 2000, "latency": 100}
    trees = {"baseline": args.baseline_src, "current": args.current_src}
    report: dict[str, Any] = {"load_before": os.getloadavg()}
    for kind in args.kinds.split(","):
        samples: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
        for _ in range(args.rounds):
            for name, src in trees.items():
                samples[name].append(_run(src, kind, sizes[kind]))
        med = {
            name: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
            for name, runs in samples.items()
        }
        report[kind] = {"median": med, "samples": samples}
        print(f"== {kind} (median of {args.rounds}, load {os.getloadavg()[0]:.1f})")
        for key in med["baseline"]:
            b, c = med["baseline"][key], med["current"][key]
            print(
                f"  {key:16s} baseline {b:10.2f}  current {c:10.2f}  current/baseline {c / b:5.2f}x"
            )
    report["load_after"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
