"""Latency-bound: 1,000 sends all in flight at once against a server that waits 200 ms.

The floor is one server latency (200 ms): every request could be answered at the same
time. Goal: promptstate's wall time <= 1.3x the floor, run logging on (DuckDB file).
The bare loops show what the client library alone costs on this machine. Each client
first runs one untimed round of the same size (opening the 1,000 connections); figures
are the best of ``--repeats`` timed rounds. The server runs in a subprocess.
"""

from __future__ import annotations

import argparse
import sys

from _clients import Sample, measure
from _common import FakeServerProcess, goal, save_results, section

LATENCY = 0.2


def main(argv: list[str] | None = None) -> int:
    """Run the latency-bound comparison and print wall / floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument(
        "--with-httpx",
        action="store_true",
        help="also time bare httpx (~30 s a round at 1,000 in flight)",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    n = 300 if args.quick else args.n
    repeats = 1 if args.quick else args.repeats
    names = ["bare aiohttp", "bare httpx+aiohttp transport", "promptstate"]
    if args.with_httpx:
        names.insert(2, "bare httpx")
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    section(f"{n} concurrent sends, server latency {LATENCY * 1000:.0f} ms")
    with FakeServerProcess(LATENCY) as server:
        for _ in range(repeats):
            for name in names:
                samples[name].append(measure(name, server, n, n, warmup=n))
    print(f"{'client':34s} {'wall':>9s} {'x floor':>8s} {'client CPU/send':>16s}")
    out: dict[str, object] = {"n": n, "latency": LATENCY}
    for name in names:
        s = min(samples[name], key=lambda x: x.wall)
        print(f"{name:34s} {s.wall * 1000:7.0f}ms {s.wall / LATENCY:7.2f}x {s.cpu_us:13.0f} us")
        out[name] = {"wall": s.wall, "x_floor": s.wall / LATENCY, "cpu_us": s.cpu_us}
    ps_best = min(samples["promptstate"], key=lambda x: x.wall)
    ratio = ps_best.wall / LATENCY
    print(
        f"RESULT latency: promptstate wall = {ratio:.2f}x the {LATENCY * 1000:.0f} ms floor "
        f"(goal <= 1.3x: {goal(ratio <= 1.3)})"
    )
    out["ratio"] = ratio
    aio = min(samples["bare aiohttp"], key=lambda x: x.wall)
    out["vs_aiohttp"] = ps_best.wall / aio.wall
    print(f"RESULT latency: promptstate wall = {out['vs_aiohttp']:.2f}x bare aiohttp's wall")
    save_results("latency", out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
