"""SQL over the team store: DuckDB's dialect through its postgres extension, read-only.

Needs the promptstate[postgres] extra (duckdb pinned to the extension wheel's version);
.ci/run runs this file in that environment (.venv-pg).
"""

from __future__ import annotations

from typing import Any

import pytest

import promptstate as ps
from promptstate.models.run import RunResult
from promptstate.runlog import PostgresRunLog, RunLog
from promptstate.runlog.postgres.queries import postgres_extension_path

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg", reason="needs the promptstate[postgres] extra")
duckdb = pytest.importorskip("duckdb")
try:
    postgres_extension_path("v" + duckdb.__version__)
except ps.RunLogError as exc:
    pytest.skip(f"{exc}", allow_module_level=True)

HISTORY_QUERIES = [
    # RunHistory's default query and `promptstate runs`' default
    "SELECT run_id, prompt_id, model, status, latency_ms, output_tokens, started_at\n"
    "FROM runs ORDER BY started_at DESC",
    "SELECT prompt_id, status, count(*) AS n, avg(latency_ms) AS ms, sum(output_tokens) AS t "
    "FROM runs GROUP BY ALL ORDER BY ALL",
    "SELECT run_id, response FROM runs WHERE status = 'error' AND latency_ms > 3 ORDER BY 1",
    "SELECT json_extract_string(variables, '$.n.value') AS n, count(*) FROM runs "
    "GROUP BY 1 ORDER BY 1",
    "SELECT date_trunc('hour', started_at) AS h, count(*) FROM runs GROUP BY 1 ORDER BY 1",
]


def _runs(n: int) -> list[RunResult]:
    return [
        RunResult(
            run_id=f"r{i:04d}",
            prompt_id=f"p{i % 3}",
            provider="echo",
            model="echo",
            status="error" if i % 5 == 0 else "success",
            variables={"n": (str(i % 4), "instance")},
            response=f"reply {i}",
            output_tokens=i % 7,
            latency_ms=float(i % 11),
            started_at=1_700_000_000.0 + 60 * i,
            finished_at=1_700_000_001.0 + 60 * i,
        )
        for i in range(n)
    ]


@pytest.fixture
def stores(pg_cluster: Any, tmp_path: Any) -> Any:
    db = pg_cluster.database()
    local = RunLog(str(tmp_path / "runs.duckdb"), "s")
    team = PostgresRunLog(pg_cluster.url(db=db), "s", query_url=pg_cluster.url("ps_reader", db))
    for run in _runs(200):
        local.write_run(run)
        team.write_run(run)
    yield local, team, pg_cluster.url("ps_reader", db)
    local.close()
    team.close()


def test_the_same_history_queries_give_identical_results(stores: Any) -> None:
    local, team, _ = stores
    for query in HISTORY_QUERIES:
        mine = local.sql(query, read_only=True).fetchall()
        ours = team.sql(query, read_only=True).fetchall()
        assert ours == mine, query
        assert len(mine) > 0


def test_session_runs_sql_and_page_on_the_team_store(pg_cluster: Any) -> None:
    db = pg_cluster.database()
    with ps.Session(db=pg_cluster.url(db=db)) as s:
        for r in _runs(10):
            s.runlog.write_run(r)
        assert s.runs.count() == 10  # flushed first: every run reported done is visible
        cols, rows, total = s.runs.page(HISTORY_QUERIES[0], 0, 5)
        assert cols[0] == "run_id" and len(rows) == 5 and total == s.runs.count()


def test_the_query_path_cannot_write_or_read_files(stores: Any) -> None:
    _, team, reader_url = stores
    with pytest.raises(ps.ReadOnlyQueryError):
        team.sql("DELETE FROM runs", read_only=True)
    with pytest.raises(ps.RunLogError):  # attached READ_ONLY even when not asked
        team.sql("DELETE FROM runs")
    with pytest.raises(ps.RunLogError):  # external access is off and locked
        team.sql("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(ps.RunLogError):
        team.sql("SET enable_external_access = true")
    # and the role the queries use has no privilege to write anyway
    with psycopg.connect(reader_url) as con, pytest.raises(psycopg.errors.InsufficientPrivilege):
        con.execute("DELETE FROM runs")
    assert team.sql("SELECT count(*) FROM runs").fetchall() == [(200,)]
