"""Run log: sweep write rate, one tracked send's added latency, queries over 1M runs.

1. Runs/s written by a large sweep on the offline ``echo`` provider (so the engine and the
   DuckDB run log are all that is measured): a file DB (default, shared mode), a file DB
   with ``exclusive_db=True``, and an in-memory DB.
2. The latency one tracked send adds: median ``await inst.send()`` with
   ``track_in_runs=True`` minus the median with ``track_in_runs=False`` (file DB; the
   tracked send waits until its rows are committed).
3. ``GROUP BY model`` over 1,000,000 synthetic runs inserted through Arrow into a table
   created by the real migrations (``promptstate.runlog.migrations.MIGRATIONS``), and a filter on a
   real column (``model``) against the same-selectivity filter on a JSON path in
   ``variables``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import goal, save_results, section

import promptstate as ps
from promptstate.models.run import RUN_COLUMNS
from promptstate.runlog.migrations import MIGRATIONS

PROMPT = ps.Prompt(
    id="echo-bench",
    messages=[ps.system("Be terse."), ps.user("Summarize {{topic}}: {{text}}")],
    variables={"text": "", "topic": ""},
    model="echo",
)


def sweep_rate(n: int, db: str | None, exclusive: bool) -> tuple[float, int]:
    """Runs/s of an ``n``-cell echo sweep (concurrency 200); also the rows logged."""

    async def go() -> tuple[float, int]:
        session = ps.Session(db=db, exclusive_db=exclusive)
        session.prompts.register(PROMPT)
        rows = [{"topic": f"t{i % 10}", "text": f"text number {i}"} for i in range(n)]
        await session.sweep(PROMPT.id, rows[:200], concurrency=200, progress=False)
        t0 = time.perf_counter()
        await session.sweep(PROMPT.id, rows, concurrency=200, progress=False)
        wall = time.perf_counter() - t0
        logged = session.runs.count()
        await session.aclose()
        return n / wall, logged

    return asyncio.run(go())


def send_latency(db: str, k: int) -> dict[str, float]:
    """Median ms of ``k`` sequential sends, tracked and untracked, interleaved."""

    async def go() -> dict[str, float]:
        session = ps.Session(db=db)
        session.prompts.register(PROMPT)
        tracked = session.start(PROMPT.id, {"topic": "a", "text": "b"})
        untracked = session.start(PROMPT.id, {"topic": "a", "text": "b"}, track_in_runs=False)
        times: dict[str, list[float]] = {"tracked": [], "untracked": []}
        for i in range(k + 10):
            for name, inst in (("tracked", tracked), ("untracked", untracked)):
                t0 = time.perf_counter()
                run = await inst.send()
                dt = time.perf_counter() - t0
                assert run.status == "success", run.error
                if i >= 10:  # first sends warm caches and open the file
                    times[name].append(dt)
        await session.aclose()
        return {name: statistics.median(v) * 1000 for name, v in times.items()}

    return asyncio.run(go())


def synthetic_runs(n: int) -> Any:
    """An Arrow table of ``n`` plausible runs with every ``runs`` column."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from promptstate.models.run import arrow_schema as _arrow_schema

    idx = pa.array(range(n), pa.int64())
    models = [f"model-{i}" for i in range(10)]
    topics = [f"topic-{i}" for i in range(10)]
    # variable 'topic' shares the model's selectivity (1 in 10) but is decorrelated from it
    model_col = pa.DictionaryArray.from_arrays(
        pc.remainder(idx, 10).cast(pa.int32()), pa.array(models)
    ).cast(pa.string())
    topic_i = pc.remainder(pc.divide(idx, 10), 10).to_pylist()
    variables = [
        f'{{"topic":{{"value":"{topics[t]}","source":"instance"}},'
        f'"text":{{"value":"some input text {i}","source":"instance"}}}}'
        for i, t in enumerate(topic_i)
    ]
    base = 1_750_000_000_000_000
    started = pa.array([base + i * 1000 for i in range(n)], pa.timestamp("us"))
    cols: dict[str, Any] = {
        "run_id": pa.array([f"run{i:08d}" for i in range(n)]),
        "instance_id": pa.array([f"i{i // 4:07d}" for i in range(n)]),
        "prompt_id": pa.array(["summarize"] * n),
        "prompt_version": pa.array(["v1"] * n),
        "provider": pa.array(["openai"] * n),
        "model": model_col,
        "status": pa.array(["success" if i % 50 else "error" for i in range(n)]),
        "variables": pa.array(variables),
        "messages": pa.array(['[{"role":"user","content":"Summarize"}]'] * n),
        "response": pa.array([f"reply {i}" for i in range(n)]),
        "error": pa.nulls(n, pa.string()),
        "input_tokens": pc.add(pc.remainder(idx, 97), 10),
        "output_tokens": pc.add(pc.remainder(idx, 89), 5),
        "latency_ms": pc.multiply(pc.remainder(idx, 1000).cast(pa.float64()), 1.5),
        "ttft_ms": pc.remainder(idx, 300).cast(pa.float64()),
        "started_at": started,
        "finished_at": started,
        "sweep_id": pa.array([f"s{i // 1000}" for i in range(n)]),
        "action_index": idx,
        "state_hash": pa.array(["0123456789abcdef"] * n),
        "attempts": pa.array([1] * n, pa.int32()),
        "cost_usd": pa.nulls(n, pa.float64()),
        "cache_key": pa.nulls(n, pa.string()),
        "cache_hit": pa.array([False] * n),
        "settings": pa.array(["{}"] * n),
        "session_id": pa.array(["bench"] * n),
        "pid": pa.array([1] * n, pa.int32()),
        "hostname": pa.array(["bench"] * n),
        "error_type": pa.array([None if i % 50 else "ProviderHTTPError" for i in range(n)]),
    }
    # a column added to the run schema later must get a synthetic value here too
    missing = set(RUN_COLUMNS) - set(cols)
    if missing:
        raise RuntimeError(f"synthetic_runs has no values for {sorted(missing)}")
    return pa.table([cols[c] for c in RUN_COLUMNS], schema=_arrow_schema())


def query_ms(con: Any, sql: str, repeats: int = 5) -> tuple[float, Any]:
    """Median ms of ``sql`` (fully fetched) and its result."""
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = con.execute(sql).fetchall()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000, result


def queries(path: str, n: int) -> dict[str, float]:
    """Build the 1M-run DB with the real migrations, then time the queries."""
    import duckdb

    table = synthetic_runs(n)
    con = duckdb.connect(path)
    for migration in MIGRATIONS:
        for stmt in migration.statements:
            con.execute(stmt)
    t0 = time.perf_counter()
    con.register("synthetic", table)
    con.execute(f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) SELECT * FROM synthetic")
    con.unregister("synthetic")
    con.execute("CHECKPOINT")
    insert_s = time.perf_counter() - t0
    out = {"insert_rows_per_s": n / insert_s}
    out["group_by_model_ms"], rows = query_ms(
        con,
        "SELECT model, count(*), avg(latency_ms), sum(output_tokens) FROM runs "
        "GROUP BY model ORDER BY model",
    )
    assert len(rows) == 10 and sum(r[1] for r in rows) == n
    out["filter_column_ms"], a = query_ms(
        con, "SELECT count(*), avg(latency_ms) FROM runs WHERE model = 'model-3'"
    )
    out["filter_json_ms"], b = query_ms(
        con,
        "SELECT count(*), avg(latency_ms) FROM runs WHERE variables->>'$.topic.value' = 'topic-3'",
    )
    assert a[0][0] == b[0][0] == n // 10, (a, b)
    con.close()
    return out


def main(argv: list[str] | None = None) -> int:
    """Print all three parts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    n_sweep, k_send, n_rows = (1000, 30, 200_000) if args.quick else (5000, 100, 1_000_000)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ps-runlog-") as tmp:
        section(f"1. echo sweep of {n_sweep} runs, concurrency 200")
        for label, db, excl in (
            ("file DB (shared, default)", "shared", False),
            ("file DB, exclusive_db=True", "exclusive", True),
            ("in-memory DB", None, False),
        ):
            path = None if db is None else str(Path(tmp) / f"{db}.duckdb")
            rate, logged = sweep_rate(n_sweep, path, excl)
            assert logged == n_sweep + 200, logged
            print(f"{label:28s} {rate:8.0f} runs/s")
            out[f"sweep_runs_per_s[{label}]"] = rate

        section(f"2. one send's added latency ({k_send} sequential sends each, echo)")
        lat = send_latency(str(Path(tmp) / "send.duckdb"), k_send)
        added = lat["tracked"] - lat["untracked"]
        print(
            f"tracked {lat['tracked']:.2f} ms, untracked {lat['untracked']:.2f} ms, "
            f"added by logging {added:.2f} ms (median)"
        )
        out |= {
            "send_tracked_ms": lat["tracked"],
            "send_untracked_ms": lat["untracked"],
            "send_added_ms": added,
        }

        section(f"3. {n_rows:,} synthetic runs (real schema)")
        q = queries(str(Path(tmp) / "big.duckdb"), n_rows)
        print(f"Arrow insert            {q['insert_rows_per_s']:12,.0f} rows/s")
        print(f"GROUP BY model          {q['group_by_model_ms']:9.1f} ms")
        print(f"WHERE model = ...       {q['filter_column_ms']:9.1f} ms   (real column)")
        print(f"WHERE variables->>...   {q['filter_json_ms']:9.1f} ms   (JSON path)")
        ratio = q["filter_json_ms"] / q["filter_column_ms"]
        print(
            f"RESULT runlog: sweep {out['sweep_runs_per_s[file DB (shared, default)]']:.0f} "
            f"runs/s; tracked send +{added:.2f} ms; GROUP BY model over {n_rows:,} runs "
            f"{q['group_by_model_ms']:.1f} ms; JSON-path filter {ratio:.0f}x a real column "
            f"({goal(q['filter_column_ms'] < q['filter_json_ms'])}: real columns are faster)"
        )
        out |= q | {"json_vs_column": ratio, "rows": n_rows}
    save_results("runlog", out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
