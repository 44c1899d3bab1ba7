"""Throughput: promptstate against bare HTTP loops on the same local fake server.

Part A (issue 3): 1,000 sends at concurrency 50, run logging on (DuckDB file), against a
bare ``httpx.AsyncClient`` loop, at 0 ms and 50 ms server latency. Goal: promptstate's
wall time <= 1.15x the bare loop's.

Part B (issue 6): 2,000 sends at concurrency 50, 0 ms latency, logging on: promptstate
vs bare httpx vs bare aiohttp (and httpx on ``httpx_aiohttp``'s transport, and promptstate
on httpx's own transport, which is how the default transport was chosen). Goal:
promptstate's throughput >= 0.8x the bare aiohttp loop's.

Every figure is the best of ``--repeats`` interleaved runs in this one process (the
machine is shared, so the fastest run is the least disturbed one); each run starts with
untimed warm-up sends that open the connections. The fake server runs in a subprocess.
"""

from __future__ import annotations

import argparse
import sys

from _clients import Sample, measure
from _common import FakeServerProcess, goal, save_results, section


def best(samples: list[Sample]) -> Sample:
    """The run with the shortest wall time."""
    return min(samples, key=lambda s: s.wall)


def run_matrix(names: list[str], latency: float, n: int, c: int, repeats: int) -> dict[str, Sample]:
    """Best-of-``repeats`` sample for every client, runs interleaved, one server process."""
    samples: dict[str, list[Sample]] = {name: [] for name in names}
    with FakeServerProcess(latency) as server:
        for _ in range(repeats):
            for name in names:
                samples[name].append(measure(name, server, n, c, warmup=c))
    return {name: best(s) for name, s in samples.items()}


def table(results: dict[str, Sample], baseline: str) -> None:
    """Print one row per client with its ratio to ``baseline``."""
    base = results[baseline]
    print(
        f"{'client':34s} {'wall':>9s} {'sends/s':>9s} {'x wall':>7s} "
        f"{'client CPU/send':>16s} {'server CPU/req':>15s}"
    )
    for name, s in results.items():
        print(
            f"{name:34s} {s.wall:8.2f}s {s.rate:9.0f} {s.wall / base.wall:6.2f}x "
            f"{s.cpu_us:13.0f} us {s.server_cpu / s.n * 1e6:12.0f} us"
        )


def main(argv: list[str] | None = None) -> int:
    """Run parts A and B and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="fewer sends, one repeat")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument(
        "--all", action="store_true", help="also time promptstate with exclusive_db=True in part B"
    )
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    n_a, n_b, c = (300, 600, 50) if args.quick else (1000, 2000, 50)
    out: dict[str, object] = {"repeats": repeats, "n_a": n_a, "n_b": n_b, "c": c}

    for latency in (0.0, 0.05):
        section(f"A: {n_a} sends, concurrency {c}, server latency {latency * 1000:.0f} ms")
        names = ["bare httpx", "promptstate", "promptstate on httpx transport"]
        res = run_matrix(names, latency, n_a, c, repeats)
        table(res, "bare httpx")
        ratio = res["promptstate"].wall / res["bare httpx"].wall
        same = res["promptstate on httpx transport"].wall / res["bare httpx"].wall
        print(
            f"RESULT A{latency * 1000:.0f}ms: promptstate / bare httpx wall = {ratio:.2f}x "
            f"(goal <= 1.15x: {goal(ratio <= 1.15)}); on the same transport as the bare "
            f"loop: {same:.2f}x"
        )
        out[f"a_{latency * 1000:.0f}ms"] = {
            k: {"wall": v.wall, "rate": v.rate, "cpu_us": v.cpu_us} for k, v in res.items()
        } | {"ratio": ratio, "ratio_same_transport": same}

    section(f"B: {n_b} sends, concurrency {c}, server latency 0 ms")
    names = ["bare aiohttp", "bare httpx", "bare httpx+aiohttp transport", "promptstate"]
    if args.all:
        names.append("promptstate exclusive_db")
    res = run_matrix(names, 0.0, n_b, c, repeats)
    table(res, "bare aiohttp")
    r_aio = res["promptstate"].rate / res["bare aiohttp"].rate
    r_httpx = res["promptstate"].rate / res["bare httpx"].rate
    transport_gain = res["bare httpx+aiohttp transport"].rate / res["bare httpx"].rate
    print(
        f"RESULT B: promptstate throughput = {r_aio:.2f}x bare aiohttp "
        f"(goal >= 0.8x: {goal(r_aio >= 0.8)}), {r_httpx:.2f}x bare httpx; "
        f"httpx_aiohttp transport vs httpx's own: {transport_gain:.1f}x"
    )
    out["b"] = {k: {"wall": v.wall, "rate": v.rate, "cpu_us": v.cpu_us} for k, v in res.items()}
    cpu_x = res["promptstate"].cpu_us / res["bare aiohttp"].cpu_us
    print(f"RESULT B: client CPU per send = {cpu_x:.1f}x bare aiohttp's CPU per request")
    out["b"] |= {
        "cpu_vs_aiohttp": cpu_x,
        "ratio_vs_aiohttp": r_aio,
        "ratio_vs_httpx": r_httpx,
        "transport_gain": transport_gain,
    }
    save_results("throughput", out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
