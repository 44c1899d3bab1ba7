"""Latency-bound: 1,000 sends all in flight at once against a server that waits 200 ms.

Issue 13's row: promptstate's wall time for 1,000 concurrent tracked sends (run log on,
a DuckDB file) against bare aiohttp's wall time for the same 1,000 requests **in the same
run**; goal <= 1.5x. The 200 ms floor (one server latency: every request could be
answered at once) is printed next to both, as is each client's CPU per send.

Method: one fake server (``tests.fake_llm.FakeServerProcess``, a subprocess, 200 ms per
request). Each round runs bare aiohttp then promptstate (each in a fresh event loop, each
after an untimed round of the same size that opens its 1,000 connections); the ratio is
reported for the best round of each and as the median of the per-round ratios (the two
clients of a round saw the same machine load).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

from _clients import Sample, measure
from _common import FakeServerProcess, goal, save_results, section

LATENCY = 0.2
GOAL = 1.5


def main(argv: list[str] | None = None) -> int:
    """Run the latency-bound comparison and print promptstate / bare aiohttp."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="sends in flight (default 1,000)")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument(
        "--with-httpx",
        action="store_true",
        help="also time bare httpx and httpx on the aiohttp transport (httpx: ~30 s a round)",
    )
    parser.add_argument("--quick", action="store_true", help="300 sends, 1 round")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.n
    repeats = 1 if args.quick else args.repeats
    names = ["bare aiohttp", "promptstate"]
    if args.with_httpx:
        names[1:1] = ["bare httpx+aiohttp transport", "bare httpx"]
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    section(
        f"{n:,} concurrent sends, server latency {LATENCY * 1000:.0f} ms, "
        f"{repeats} round(s), load average {os.getloadavg()[0]:.1f}"
    )
    with FakeServerProcess(LATENCY) as server:
        for _ in range(repeats):
            for name in names:
                samples[name].append(measure(name, server, n, n, warmup=n))
    print(
        f"{'client':30s} {'best wall':>10s} {'x floor':>8s} {'x aiohttp':>10s} "
        f"{'client CPU/send':>16s} {'server CPU/req':>15s}"
    )
    best = {name: min(samples[name], key=lambda x: x.wall) for name in names}
    aio = best["bare aiohttp"]
    out: dict[str, object] = {"n": n, "latency": LATENCY, "repeats": repeats}
    for name in names:
        s = best[name]
        print(
            f"{name:30s} {s.wall * 1000:8.0f}ms {s.wall / LATENCY:7.2f}x "
            f"{s.wall / aio.wall:9.2f}x {s.cpu_us:13.0f} us {s.server_cpu / s.n * 1e6:12.0f} us"
        )
        out[name] = {
            "wall": s.wall,
            "x_floor": s.wall / LATENCY,
            "cpu_us": s.cpu_us,
            "walls": [x.wall for x in samples[name]],
        }
    ps_best = best["promptstate"]
    per_round = [
        p.wall / a.wall
        for p, a in zip(samples["promptstate"], samples["bare aiohttp"], strict=True)
    ]
    ratio = ps_best.wall / aio.wall
    out |= {
        "vs_aiohttp": ratio,
        "vs_aiohttp_per_round": per_round,
        "vs_aiohttp_median_round": statistics.median(per_round),
        "ratio": ps_best.wall / LATENCY,  # x the floor (kept for run_all.py)
        "aiohttp_x_floor": aio.wall / LATENCY,
        "loadavg": os.getloadavg()[0],
    }
    print(
        f"RESULT latency: promptstate wall {ps_best.wall * 1000:.0f} ms vs bare aiohttp "
        f"{aio.wall * 1000:.0f} ms = {ratio:.2f}x (median of per-round ratios "
        f"{statistics.median(per_round):.2f}x; goal <= {GOAL}x: {goal(ratio <= GOAL)})"
    )
    print(
        f"RESULT latency: floor {LATENCY * 1000:.0f} ms: "
        f"promptstate {ps_best.wall / LATENCY:.2f}x, "
        f"bare aiohttp {aio.wall / LATENCY:.2f}x"
    )
    save_results("latency", out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
