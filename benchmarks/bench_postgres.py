"""Team store query cost: the default RunHistory query and a GROUP BY over N runs.

Postgres as ``session.runs.sql`` runs it (the local mirror of finished runs, refreshed
incrementally; and, for reference, every row through DuckDB's postgres extension with
``mirror=False``) against a local DuckDB file holding the same rows, side by side in one
process; prints ms and the ratios. The first query of a session (cold mirror: the bulk
copy) is timed once; warm queries are the median of 5, both with the default rate limit
(at most one refresh a second) and with a refresh before every query
(``mirror_interval=0``: one Postgres round trip each). Needs the promptstate[postgres]
extra and Debian's postgresql.

    .venv-pg/bin/python benchmarks/bench_postgres.py [N]   # default 1,000,000
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.pg import PgCluster, find_pg_bin

from promptstate.models.run import RUN_COLUMNS, arrow_schema
from promptstate.runlog import PostgresRunLog, RunLog

HISTORY = (
    "SELECT run_id, prompt_id, model, status, latency_ms, output_tokens, started_at\n"
    "FROM runs ORDER BY started_at DESC"
)
HISTORY_PAGE = HISTORY + " LIMIT 100"
GROUP_BY = (
    "SELECT prompt_id, model, status, count(*), avg(latency_ms), sum(output_tokens) "
    "FROM runs GROUP BY ALL"
)
FILTERED = "SELECT count(*), avg(latency_ms) FROM runs WHERE prompt_id = 'p7'"


def _table(n: int) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc

    i = pa.array(range(n), pa.int64())
    cols: dict[str, Any] = {c: pa.nulls(n, arrow_schema().field(c).type) for c in RUN_COLUMNS}
    cols["run_id"] = pc.binary_join_element_wise("r", pc.cast(i, pa.string()), "")
    cols["prompt_id"] = pc.binary_join_element_wise(
        "p", pc.cast(pc.bit_wise_and(i, 15), pa.string()), ""
    )
    cols["model"] = pa.array(["echo"] * n)
    cols["provider"] = pa.array(["echo"] * n)
    cols["status"] = pa.array(
        ["success", "success", "success", "error"] * (n // 4) + ["success"] * (n % 4)
    )
    cols["latency_ms"] = pc.cast(pc.bit_wise_and(i, 255), pa.float64())
    cols["output_tokens"] = pc.bit_wise_and(i, 63)
    ts = pc.add(pa.scalar(1_700_000_000_000_000, pa.int64()), pc.multiply(i, 1_000_000))
    cols["started_at"] = pc.cast(ts, pa.timestamp("us"))
    cols["finished_at"] = pc.cast(pc.add(ts, 500_000), pa.timestamp("us"))
    cols["variables"] = pa.array(["{}"] * n)
    cols["messages"] = pa.array(["[]"] * n)
    cols["settings"] = pa.array(["{}"] * n)
    return pa.table(cols, schema=arrow_schema())


def _time(fn: Any, repeat: int = 5) -> float:
    fn()  # warm: extension load, attach, caches
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise SystemExit("Postgres is not installed (apt-get install postgresql)")
    cluster = PgCluster(bin_dir)
    tmp = tempfile.mkdtemp()
    try:
        db = cluster.database()
        url = cluster.url(db=db)
        table = _table(n)
        local = RunLog(os.path.join(tmp, "runs.duckdb"), "bench", exclusive=True)
        with local._conn.main() as con:  # bulk load: the benchmark is about reading
            con.from_arrow(table).insert_into("runs")
        team = PostgresRunLog(url, "bench", query_url=cluster.url("ps_reader", db))
        t0 = time.perf_counter()
        import psycopg

        with psycopg.connect(url) as pg, pg.cursor() as cur:
            buf = io.StringIO()
            table.to_pandas().to_csv(buf, index=False, header=False)
            with cur.copy(f"COPY runs ({', '.join(RUN_COLUMNS)}) FROM STDIN (FORMAT csv)") as cp:
                cp.write(buf.getvalue())
            cur.execute("ANALYZE runs")
        print(f"loaded {n:,} runs into Postgres in {time.perf_counter() - t0:.1f}s")
        reader = cluster.url("ps_reader", db)
        t0 = time.perf_counter()
        local.arrow(HISTORY_PAGE, read_only=True)
        cold_local = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        team.arrow(HISTORY_PAGE, read_only=True)  # opens the engine: attach + bulk copy
        cold_team = (time.perf_counter() - t0) * 1000
        print(
            f"first query (history page), cold mirror: local {cold_local:.1f} ms, "
            f"postgres {cold_team:.1f} ms ({cold_team / cold_local:.0f}x)"
        )
        every = PostgresRunLog(url, "bench-refresh", query_url=reader, mirror_interval=0.0)
        attach = PostgresRunLog(url, "bench-attach", query_url=reader, mirror=False)
        every.arrow(HISTORY_PAGE, read_only=True)
        header = ("query", "local", "mirror", "x", "refresh", "x", "attach", "x")
        print("{:<20} {:>8} {:>8} {:>5} {:>8} {:>5} {:>8} {:>5}".format(*header))
        for name, query in (
            ("history (all rows)", HISTORY),
            ("history (1st page)", HISTORY_PAGE),
            ("group by", GROUP_BY),
            ("filtered aggregate", FILTERED),
        ):
            a = _time(lambda q=query: local.arrow(q, read_only=True))
            row = [name, f"{a:.1f}"]
            for log in (team, every, attach):
                b = _time(lambda q=query, log=log: log.arrow(q, read_only=True))
                row += [f"{b:.1f}", f"{b / a:.1f}"]
            print("{:<20} {:>8} {:>8} {:>5} {:>8} {:>5} {:>8} {:>5}".format(*row))
        every.close()
        attach.close()
        local.close()
        team.close()
    finally:
        cluster.close()


if __name__ == "__main__":
    main()
