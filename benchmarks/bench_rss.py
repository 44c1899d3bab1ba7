"""RSS over 50,000 tracked HTTP sends in one session, against bare aiohttp doing the same.

Issue 13's row: "RSS over 50,000 HTTP sends in one session: flat (within 5%)". Each
client runs in a fresh Python process (so neither inherits the other's heap) against one
fake OpenAI server (``tests.fake_llm.FakeServerProcess``, a subprocess, 0 ms latency):

* ``promptstate sweep``: one ``Session`` (DuckDB file run log, default shared mode), the
  sends made as sweeps of ``--chunk`` cells at ``--concurrency``; each sweep object is
  dropped once awaited, so the benchmark itself keeps nothing (``--keep`` adds a run
  that keeps every sweep, to show what holding the results costs).
* ``promptstate send``: the same session set-up, ``--concurrency`` instances each
  awaiting ``inst.send(variables=...)`` in turn (the interactive path, one fresh
  conversation per send); the ``RunResult`` of each send is dropped.
* ``bare aiohttp`` (the control): the same requests (promptstate's body, streaming) in
  ``--concurrency`` workers on one ``aiohttp.ClientSession``, each response read to the end.

Every client first makes ``--warmup`` untimed sends, then ``--sends`` more; RSS
(``VmRSS``, after ``gc.collect()``) and Python's allocated blocks are sampled at the
start and every ``--every`` sends. The sampler's own figures (the DB file's size, a
``duckdb_memory()`` query) are read after every warm-up chunk too: a query's first uses
import pyarrow and fill its memory pool (~35 MB, then ~12 MB more over the next few
queries), and counted inside the measured sends that was the benchmark measuring itself.
Reported: RSS at the first sample and at the end, the
growth in % and in MB per 1,000 sends (end - first, and the least-squares slope over
all samples), and promptstate's figures next to the control's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from _clients import WORDS, bench_prompt, body
from _common import FakeServerProcess, goal, machine_info, save_results, section

HERE = Path(__file__).resolve().parent
KINDS = ("bare aiohttp", "promptstate sweep", "promptstate send", "promptstate sweep, kept")
GOAL_PCT = 5.0


def rss_mb() -> float:
    """This process's resident set size in MB (``VmRSS``)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class Sampler:
    """RSS and allocated blocks every ``every`` sends after the warm-up."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.samples: list[dict[str, float]] = []
        self.t0 = time.perf_counter()

    def sample(self, sends: int, extra: dict[str, float] | None = None) -> None:
        """Record one sample at ``sends`` measured sends."""
        gc.collect()
        s = {
            "sends": sends,
            "rss_mb": rss_mb(),
            "blocks": sys.getallocatedblocks(),
            "t": time.perf_counter() - self.t0,
            **(extra or {}),
        }
        self.samples.append(s)
        print(
            f"  {sends:7,d} sends  RSS {s['rss_mb']:7.1f} MB  blocks {s['blocks']:9,d}"
            + "".join(f"  {k} {v:,.1f}" for k, v in (extra or {}).items()),
            file=sys.stderr,
            flush=True,
        )


def _texts(start: int, n: int) -> list[dict[str, str]]:
    return [{"text": f"{WORDS} #{k}"} for k in range(start, start + n)]


async def _drive(
    chunk: Callable[[list[dict[str, str]]], Awaitable[None]],
    args: argparse.Namespace,
    extra: Callable[[], dict[str, float]] = dict,
) -> Sampler:
    """Warm up, then ``args.sends`` sends in chunks, sampling every ``args.every``."""
    done = 0
    while done < args.warmup:
        k = min(args.chunk, args.warmup - done)
        await chunk(_texts(done, k))
        done += k
        extra()  # the sampler's own first-use costs go into the warm-up, not the figures
    sampler = Sampler(args.every)
    sampler.sample(0, extra())
    measured = 0
    while measured < args.sends:
        k = min(args.chunk, args.sends - measured, args.every - measured % args.every)
        await chunk(_texts(done + measured, k))
        measured += k
        if measured % args.every == 0 or measured == args.sends:
            sampler.sample(measured, extra())
    return sampler


async def bare_aiohttp(url: str, args: argparse.Namespace) -> Sampler:
    """The control: promptstate's requests through one ``aiohttp.ClientSession``."""
    import aiohttp

    c = args.concurrency
    endpoint = url + "/chat/completions"
    connector = aiohttp.TCPConnector(limit=c)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def chunk(batch: list[dict[str, str]]) -> None:
            it = iter(batch)

            async def worker() -> None:
                for row in it:
                    async with http.post(endpoint, json=body(row)) as r:
                        r.raise_for_status()
                        await r.read()

            await asyncio.gather(*(worker() for _ in range(c)))

        return await _drive(chunk, args)


async def promptstate(url: str, args: argparse.Namespace, mode: str, keep: bool) -> Sampler:
    """One session; sweeps of ``args.chunk`` cells, or sends from ``c`` instances."""
    import promptstate as ps
    from promptstate.providers import OpenAICompatible

    c = args.concurrency
    kept: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="ps-rss-") as tmp:
        db = Path(tmp) / "runs.duckdb"
        provider = OpenAICompatible(
            name="fake", base_url=url, api_key="sk-bench", max_concurrency=c
        )
        session = ps.Session(db=str(db), providers=[provider])
        session.prompts.register(bench_prompt())
        instances = [session.start("bench") for _ in range(c)] if mode == "send" else []

        async def sweep_chunk(batch: list[dict[str, str]]) -> None:
            sw = await session.sweep("bench", batch, concurrency=c, progress=False)
            if sw.errors:
                raise RuntimeError(f"{sw.errors} sends failed: {session.task_errors[-1:]}")
            if keep:
                kept.append(sw)

        async def send_chunk(batch: list[dict[str, str]]) -> None:
            it = iter(batch)

            async def worker(inst: Any) -> None:
                for row in it:
                    result = await inst.send(variables=row)
                    if result.status != "success":
                        raise RuntimeError(f"send ended {result.status}: {result.error}")
                    if keep:
                        kept.append(result)

            await asyncio.gather(*(worker(inst) for inst in instances))

        def extra() -> dict[str, float]:
            size = sum(p.stat().st_size for p in Path(tmp).glob("runs.duckdb*"))
            # DuckDB's own accounting (buffer pool, indexes): native memory in the RSS
            duck = session.runs.sql("SELECT sum(memory_usage_bytes) FROM duckdb_memory()")
            return {
                "db_mb": size / 2**20,
                "duckdb_mb": float(duck.fetchall()[0][0] or 0) / 2**20,
                "sweeps_in_state": float(len(session.store.get_state().sweeps)),
                "runs_in_state": float(len(session.store.get_state().runs)),
            }

        try:
            sampler = await _drive(sweep_chunk if mode == "sweep" else send_chunk, args, extra)
            logged = session.runs.count()
            if logged != args.warmup + args.sends:
                raise RuntimeError(f"{logged} runs logged, expected {args.warmup + args.sends}")
        finally:
            await session.aclose()
        return sampler


def worker(kind: str, url: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one client in this (fresh) process; its samples as a dict."""
    t0 = time.perf_counter()
    if kind == "bare aiohttp":
        sampler = asyncio.run(bare_aiohttp(url, args))
    else:
        mode = "send" if kind == "promptstate send" else "sweep"
        sampler = asyncio.run(promptstate(url, args, mode, keep=kind.endswith("kept")))
    return {"kind": kind, "samples": sampler.samples, "wall": time.perf_counter() - t0}


def summarize(res: dict[str, Any]) -> dict[str, float]:
    """First/end RSS, growth %, MB per 1,000 sends (end-first and least squares)."""
    s = res["samples"]
    first, end = s[0], s[-1]
    sends = end["sends"] - first["sends"]
    xs = [x["sends"] / 1000 for x in s]
    ys = [x["rss_mb"] for x in s]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return {
        "rss_first_mb": first["rss_mb"],
        "rss_end_mb": end["rss_mb"],
        "rss_peak_mb": max(ys),
        "growth_pct": (end["rss_mb"] - first["rss_mb"]) / first["rss_mb"] * 100,
        "mb_per_1000": (end["rss_mb"] - first["rss_mb"]) / (sends / 1000),
        "slope_mb_per_1000": slope,
        "blocks_per_1000": (end["blocks"] - first["blocks"]) / (sends / 1000),
        "sends_per_s": sends / (end["t"] - first["t"]),
        "db_mb": end.get("db_mb", 0.0),
        "duckdb_mb_first": first.get("duckdb_mb", 0.0),
        "duckdb_mb_end": end.get("duckdb_mb", 0.0),
    }


def main(argv: list[str] | None = None) -> int:
    """Run every client in its own process against one fake server; print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", type=int, default=50_000, help="measured sends (50,000)")
    parser.add_argument("--warmup", type=int, default=5_000, help="untimed sends first (5,000)")
    parser.add_argument("--every", type=int, default=5_000, help="sample interval (5,000)")
    parser.add_argument("--chunk", type=int, default=1_000, help="cells per sweep (1,000)")
    parser.add_argument("--concurrency", type=int, default=50, help="sends in flight (50)")
    parser.add_argument(
        "--modes",
        default="sweep,send",
        help="promptstate paths to run: sweep, send (default both)",
    )
    parser.add_argument("--keep", action="store_true", help="also a sweep run that keeps results")
    parser.add_argument("--quick", action="store_true", help="5,000 sends, 1,000 warm-up")
    parser.add_argument("--json", help="write the figures to this JSON file")
    parser.add_argument("--worker", choices=KINDS, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sends, args.warmup, args.every = 5_000, 1_000, 1_000
    if args.worker:
        print(json.dumps(worker(args.worker, args.url, args)), flush=True)
        return 0
    kinds = ["bare aiohttp"] + [f"promptstate {m.strip()}" for m in args.modes.split(",")]
    if args.keep:
        kinds.append("promptstate sweep, kept")
    section(
        f"{args.sends:,} sends per client after {args.warmup:,} warm-up, @{args.concurrency}, "
        f"fake server 0 ms; RSS every {args.every:,}; load average {os.getloadavg()[0]:.1f}"
    )
    passthrough = ["--sends", str(args.sends), "--warmup", str(args.warmup)]
    passthrough += ["--every", str(args.every), "--chunk", str(args.chunk)]
    passthrough += ["--concurrency", str(args.concurrency)]
    results: dict[str, Any] = {}
    with FakeServerProcess(0.0) as server:
        for kind in kinds:
            print(f"{kind}:", file=sys.stderr, flush=True)
            cmd = [sys.executable, __file__, "--worker", kind, "--url", server.openai_base_url]
            res = subprocess.run([*cmd, *passthrough], stdout=subprocess.PIPE, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"{kind} worker failed (exit {res.returncode})")
            results[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    summary = {k: summarize(v) for k, v in results.items()}
    print(
        f"\n{'client':26s} {'RSS first':>10s} {'RSS end':>9s} {'growth':>8s} {'MB/1k':>7s} "
        f"{'slope':>7s} {'blocks/1k':>10s} {'sends/s':>8s} {'DB file':>8s} {'DuckDB mem':>14s}"
    )
    for kind, s in summary.items():
        print(
            f"{kind:26s} {s['rss_first_mb']:8.1f}MB {s['rss_end_mb']:7.1f}MB "
            f"{s['growth_pct']:+7.1f}% {s['mb_per_1000']:+7.3f} {s['slope_mb_per_1000']:+7.3f} "
            f"{s['blocks_per_1000']:+10,.0f} {s['sends_per_s']:8.0f} {s['db_mb']:6.1f}MB "
            f"{s['duckdb_mb_first']:5.1f}->{s['duckdb_mb_end']:5.1f}MB"
        )
    control = summary["bare aiohttp"]
    for kind, s in summary.items():
        if kind == "bare aiohttp" or kind.endswith("kept"):
            continue
        print(
            f"RESULT rss: {kind}: {s['growth_pct']:+.1f}% over {args.sends:,} sends "
            f"({s['rss_first_mb']:.1f} -> {s['rss_end_mb']:.1f} MB, "
            f"{s['mb_per_1000']:+.3f} MB per 1,000); bare aiohttp {control['growth_pct']:+.1f}% "
            f"({control['mb_per_1000']:+.3f} MB per 1,000) (goal flat within {GOAL_PCT:.0f}%: "
            f"{goal(abs(s['growth_pct']) <= GOAL_PCT)})"
        )
    out = {
        "sends": args.sends,
        "warmup": args.warmup,
        "every": args.every,
        "chunk": args.chunk,
        "concurrency": args.concurrency,
        "loadavg": os.getloadavg()[0],
        "promptstate": machine_info().get("promptstate"),
        "summary": summary,
        "samples": {k: v["samples"] for k, v in results.items()},
    }
    save_results("rss", out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
