"""SQL over the team store: DuckDB's dialect through its postgres extension, read-only.

Needs the promptstate[postgres] extra (duckdb pinned to the extension wheel's version);
.ci/run runs this file in that environment (.venv-pg).
"""

from __future__ import annotations

import dataclasses
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


def _statuses(log: Any) -> dict[str, str]:
    return dict(log.sql("SELECT run_id, status FROM runs ORDER BY 1", read_only=True).fetchall())


def _started(i: int, status: str = "running") -> RunResult:
    run = _runs(i + 1)[i]
    if status == "running":
        return dataclasses.replace(run, status="running", finished_at=None)
    return run


def test_a_run_that_ends_between_two_queries_shows_as_finished(pg_cluster: Any) -> None:
    db = pg_cluster.database()
    url, reader = pg_cluster.url(db=db), pg_cluster.url("ps_reader", db)
    team = PostgresRunLog(url, "s", query_url=reader)
    other = PostgresRunLog(url, "o")  # another session of the team
    # mirror_interval=0: every query refreshes (the default limits refreshes to 1/s)
    watcher = PostgresRunLog(url, "w", query_url=reader, mirror_interval=0.0)
    try:
        team.write_run(_started(1))
        other.write_run(_started(2))
        other.flush()
        # this session's own commit is visible at once, whatever the rate limit
        assert _statuses(team) == {"r0001": "running", "r0002": "running"}
        assert _statuses(watcher) == {"r0001": "running", "r0002": "running"}
        team.write_run(_started(1, "success"))
        other.write_run(_started(2, "success"))
        # both committed (a writer under load may hold a batch open for GROUP_WINDOW)
        team.flush()
        other.flush()
        assert _statuses(watcher) == {"r0001": "success", "r0002": "success"}
        assert _statuses(team)["r0001"] == "success"
        assert watcher.sql("SELECT count(*) FROM runs").fetchall() == [(2,)]
    finally:
        for log in (team, other, watcher):
            log.close()


def test_the_mirror_stays_identical_to_a_file_as_runs_arrive(stores: Any) -> None:
    local, team, _ = stores
    assert team.sql(HISTORY_QUERIES[0], read_only=True).fetchall()  # warm: cold copy done
    engine = team._engine()
    assert engine.mirror is not None and engine.mirror.refreshes >= 1
    fetched = engine.mirror.rows_fetched
    # 50 more runs, then one whose commit lands after a newer run's: its finished_at is
    # 30 s older than the newest seen, inside the overlap window re-read by each refresh
    for run in _runs(250)[200:]:
        local.write_run(run)
        team.write_run(run)
    newest = _runs(250)[249].finished_at
    assert newest is not None
    for query in HISTORY_QUERIES:
        assert (
            team.sql(query, read_only=True).fetchall()
            == local.sql(query, read_only=True).fetchall()
        ), query
    late = dataclasses.replace(
        _runs(1)[0], run_id="late", started_at=newest - 31, finished_at=newest - 30
    )
    local.write_run(late)
    team.write_run(late)
    for query in HISTORY_QUERIES:
        assert (
            team.sql(query, read_only=True).fetchall()
            == local.sql(query, read_only=True).fetchall()
        ), query
    # the refresh fetched the new rows and the overlap window, not the whole table again
    assert 51 <= engine.mirror.rows_fetched - fetched < 200, engine.mirror.rows_fetched
    assert team.sql("SELECT count(*) FROM runs").fetchall() == [(251,)]


def test_refreshes_are_rate_limited_and_the_mirror_is_read_only(pg_cluster: Any) -> None:
    db = pg_cluster.database()
    url = pg_cluster.url(db=db)
    team = PostgresRunLog(url, "s", mirror_interval=3600.0)
    other = PostgresRunLog(url, "o")
    try:
        team.write_run(_runs(1)[0])
        assert team.sql("SELECT count(*) FROM runs").fetchall() == [(1,)]
        other.write_run(_runs(2)[1])
        other.flush()
        # another session's run waits for the next refresh (an hour away here)...
        assert team.sql("SELECT count(*) FROM runs").fetchall() == [(1,)]
        assert team._engine().refresh(force=True)
        assert team.sql("SELECT count(*) FROM runs").fetchall() == [(2,)]
        # ...and no query can change the local copy, read-only or not
        with pytest.raises(ps.RunLogError):
            team.sql("DELETE FROM ps_mirror.runs")
        with pytest.raises(ps.RunLogError):
            team.sql("INSERT INTO ps_mirror.runs SELECT * FROM runs")
        with pytest.raises(ps.ReadOnlyQueryError):
            team.sql("DELETE FROM ps_mirror.runs", read_only=True)
        assert team.sql("SELECT count(*) FROM runs").fetchall() == [(2,)]
    finally:
        team.close()
        other.close()


def test_the_mirror_indexes_exist_once_and_serve_the_refresh(pg_cluster: Any) -> None:
    from promptstate.runlog.postgres.migrations import migrate

    db = pg_cluster.database()
    url = pg_cluster.url(db=db)
    PostgresRunLog(url, "s").close()
    with psycopg.connect(url) as con:
        assert migrate(con) == []  # a second migrate changes nothing
        names = {r[0] for r in con.execute("SELECT indexname FROM pg_indexes").fetchall()}
    assert {"runs_finished_at", "runs_running"} <= names
    # the refresh query's two halves are answered from them, not a scan of every row
    with psycopg.connect(url) as con:
        con.execute("SET enable_seqscan = off")  # a 0-row table: ask what it *can* use
        plan = "\n".join(
            r[0]
            for r in con.execute(
                "EXPLAIN SELECT run_id FROM runs WHERE status = 'running' UNION ALL "
                "SELECT run_id FROM runs WHERE finished_at > now() AND status <> 'running'"
            ).fetchall()
        )
    assert "runs_running" in plan and "runs_finished_at" in plan, plan


def test_a_writer_whose_clock_runs_ahead_hides_no_one_elses_runs(pg_cluster: Any) -> None:
    import time

    db = pg_cluster.database()
    url = pg_cluster.url(db=db)
    team = PostgresRunLog(url, "s", mirror_interval=0.0)
    try:
        assert team.sql("SELECT count(*) FROM runs").fetchall() == [(0,)]  # cold: empty
        now = time.time()
        ahead = dataclasses.replace(
            _runs(2)[1], run_id="ahead", started_at=now + 86_399, finished_at=now + 86_400
        )
        team.write_run(ahead)
        assert _statuses(team) == {"ahead": "success"}
        on_time = dataclasses.replace(
            _runs(2)[1], run_id="on-time", started_at=now - 1, finished_at=now
        )
        team.write_run(on_time)
        assert _statuses(team) == {"ahead": "success", "on-time": "success"}
    finally:
        team.close()
