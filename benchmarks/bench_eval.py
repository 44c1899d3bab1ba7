"""Re-scoring: 10,000 logged runs scored by deterministic built-in scorers.

``session.score(query, scorers)`` end to end: read the runs from the log, build each
``RunResult``, apply 4 built-in scorers (contains, regex, length, latency), write the
40,000 ``scores`` rows and wait for their commit. Baseline, in the same process: a bare
Python loop applying the same checks to the same rows already in memory (no log, no
``RunResult``, no score rows). Goal: >= 20,000 runs/s. No network, no model calls.

The built-in scorers score column by column (``Scorer.batch``) and the 40,000 rows go
to the writer as one Arrow table, committed in one transaction.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import tempfile
import time
from pathlib import Path

from _common import goal, save_results, section

import promptstate as ps


def make_runs(session: ps.Session, n: int) -> list[tuple[str, float]]:
    rows = []
    for i in range(n):
        response = f"answer {i % 97} is ok" if i % 3 else f"no number here {i}"
        latency = float(i % 2000)
        run = ps.RunResult(
            run_id=f"r{i:06d}",
            prompt_id="bench",
            prompt_version="v1",
            provider="echo",
            model="echo",
            status="success",
            variables={"x": (str(i), "instance")},
            messages=(ps.ChatMessage("user", f"question {i}"),),
            response=response,
            latency_ms=latency,
            started_at=time.time(),
            finished_at=time.time(),
        )
        session.runlog.write_run(run)
        rows.append((response, latency))
    session.runlog.flush()
    return rows


def baseline(rows: list[tuple[str, float]]) -> int:
    pattern = re.compile(r"\d+")
    passed = 0
    for response, latency in rows:
        passed += "ok" in response
        passed += pattern.search(response) is not None
        passed += len(response) <= 200
        passed += latency <= 1000
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results as JSON here (run_all.py)")
    args = parser.parse_args()
    scorers = [
        ps.scorers.contains("ok"),
        ps.scorers.regex(r"\d+"),
        ps.scorers.length(max=200),
        ps.scorers.latency(max_ms=1000),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        session = ps.Session(db=str(Path(tmp) / "bench.duckdb"), exclusive_db=True)
        rows = make_runs(session, args.runs)
        ours, base = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            baseline(rows)
            base.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            asyncio.run(session.score("SELECT * FROM runs", scorers))
            ours.append(time.perf_counter() - t0)
        written = session.runs.sql("SELECT count(*) FROM scores").fetchall()[0][0]
        session.close()
    assert written == args.runs * len(scorers) * args.repeats
    ours_rate = args.runs / min(ours)
    base_rate = args.runs / min(base)
    section(
        f"re-score {args.runs:,} logged runs x {len(scorers)} built-in scorers "
        f"(best of {args.repeats})"
    )
    print(
        f"  session.score (read + score + write {args.runs * len(scorers):,} rows): "
        f"{ours_rate:,.0f} runs/s"
    )
    print(f"  baseline bare loop, same checks, rows in memory:        {base_rate:,.0f} runs/s")
    print(f"  ratio baseline / promptstate: {base_rate / ours_rate:.1f}x")
    print(f"  goal >= 20,000 runs/s: {goal(ours_rate >= 20_000)}")
    if hasattr(os, "getloadavg"):  # the machine's load, to read the numbers against
        print("  load average (1/5/15 min): " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    save_results(
        "eval",
        {
            "runs": args.runs,
            "scorers": len(scorers),
            "score_runs_per_s": round(ours_rate),
            "baseline_runs_per_s": round(base_rate),
        },
        args.json,
    )


if __name__ == "__main__":
    main()
