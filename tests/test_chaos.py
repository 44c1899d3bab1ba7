"""Chaos: many sends against the fake server with random faults; nothing lost or leaked.

``PROMPTSTATE_CHAOS_N`` sets the number of sends (CI runs 10,000; the default is smaller
so a plain ``pytest`` stays quick).
"""

from __future__ import annotations

import asyncio
import gc
import os
import random
import resource
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import promptstate as ps
from promptstate.core.selectors import select_runs_in_flight
from promptstate.providers import OpenAICompatible, RetryPolicy, Timeouts

from .fake_llm import FakeServerProcess

N = int(os.environ.get("PROMPTSTATE_CHAOS_N", "1500"))

# fault -> expected terminal status (faults apply to every attempt of that request).
# Each outcome must not depend on machine speed: a stall never resumes (so only the read
# timeout can end it), and the read timeout is far longer than any gap a loaded machine
# puts between two chunks of a healthy stream (the server shares the cores with this
# process, the reducer-immutability middleware and whatever else runs).
FAULTS = {
    "ok": "success",
    "429:retry_after=0": "error",
    "500": "error",
    "stall=forever": "error",
    "drop_after=2": "error",
    "malformed": "error",
    "drip=0.002": "success",
    "no_usage": "success",
    "400": "error",
}
WEIGHTS = [60, 6, 6, 3, 6, 5, 6, 6, 2]
# Seconds without a byte before a stream counts as stalled; the stalled runs of a batch
# end together after it, so it adds about this much per batch of 1000 sends.
READ_TIMEOUT = 5.0


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    # a separate process: the server's work must not share this process's GIL and RSS
    with FakeServerProcess() as server:
        yield server.openai_base_url


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.mark.slow
def test_chaos_every_run_ends_once_and_nothing_leaks(server_url: str, tmp_path: Path) -> None:
    rng = random.Random(1234)
    plan = rng.choices(list(FAULTS), weights=WEIGHTS, k=N)
    provider = OpenAICompatible(
        name="chaos",
        base_url=server_url,
        api_key="sk-chaos-SECRET-000111222",
        retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.01),
        timeouts=Timeouts(connect=30, read=READ_TIMEOUT),
        max_concurrency=64,
    )
    session = ps.Session(db=str(tmp_path / "chaos.duckdb"), providers=[provider], history=200)
    session.prompts.register(
        ps.Prompt(id="c", messages=[ps.user("{{x}}")], settings={"max_tokens": 20})
    )
    fds_before = len(os.listdir("/proc/self/fd"))
    rss: list[float] = []

    async def main() -> list[ps.RunResult]:
        sem = asyncio.Semaphore(128)

        async def one(i: int, fault: str) -> ps.RunResult:
            async with sem:
                inst = session.start(
                    "c",
                    variables={"x": f"run {i} one two three four"},
                    model=f"chaos:m+fault:{fault}",
                )
                try:
                    return await inst.send()
                finally:
                    inst.close()

        results = []
        batch = 1000
        for start in range(0, N, batch):  # batches, to watch memory between them
            results += await asyncio.gather(
                *(one(i, plan[i]) for i in range(start, min(N, start + batch)))
            )
            gc.collect()
            rss.append(_rss_mb())
        await provider.aclose()
        assert len(asyncio.all_tasks()) == 1  # only main(): no task leaked
        return results

    t0 = time.perf_counter()
    results = asyncio.run(main())
    elapsed = time.perf_counter() - t0
    expected = Counter(FAULTS[f] for f in plan)
    got = Counter(r.status for r in results)
    assert got == expected
    rows = dict(session.runs.sql("SELECT status, count(*) FROM runs GROUP BY ALL").fetchall())
    assert rows == dict(expected), rows
    assert session.runs.sql("SELECT count(DISTINCT run_id) FROM runs").fetchall() == [(N,)]
    by_fault = Counter(zip(plan, (r.status for r in results), strict=True))
    for fault, status in FAULTS.items():
        assert by_fault[(fault, status)] == plan.count(fault), fault
    assert select_runs_in_flight(session.store.get_state()) == ()
    assert not session.runtime.tasks.all_tasks()
    assert len(session.store.get_state().instances) == 0
    fds_after = len(os.listdir("/proc/self/fd"))
    assert fds_after <= fds_before + 5, (fds_before, fds_after)
    if len(rss) >= 3:
        assert rss[-1] - rss[1] < 60, rss  # flat after warm-up (MB)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    session.close()
    print(
        f"\nchaos: {N} sends in {elapsed:.1f}s ({N / elapsed:.0f}/s), statuses {dict(got)}, "
        f"RSS per 1000 {[round(x) for x in rss]} MB, peak RSS {peak:.0f} MB, "
        f"fds {fds_before}->{fds_after}"
    )
