"""The team run log on a real Postgres (tests/pg.py starts a throwaway cluster)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from typing import Any

import pytest

import promptstate as ps
from promptstate.models.run import RunResult
from promptstate.runlog import PostgresRunLog, RunLog, open_run_log

pytestmark = pytest.mark.postgres
psycopg = pytest.importorskip("psycopg", reason="needs the promptstate[postgres] extra")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def pg_url(pg_cluster: Any) -> str:
    return str(pg_cluster.url(db=pg_cluster.database()))


def _count(url: str, where: str = "TRUE") -> int:
    with psycopg.connect(url) as con:
        return int(con.execute(f"SELECT count(*) FROM runs WHERE {where}").fetchone()[0])


def _run(i: int, status: str = "success", session: str = "s") -> RunResult:
    return RunResult(
        run_id=f"r{i:05d}",
        prompt_id=f"p{i % 3}",
        model="echo",
        provider="echo",
        status=status,
        response=f"reply {i}",
        output_tokens=i % 7,
        latency_ms=float(i % 11),
        started_at=1_700_000_000.0 + i,
        finished_at=None if status == "running" else 1_700_000_001.0 + i,
        session_id=session,
    )


def test_session_logs_runs_prompts_and_scoped_variables(pg_url: str) -> None:
    async def go() -> RunResult:
        async with ps.Session(db=pg_url, user_id="u1") as s:
            assert isinstance(s.runlog, PostgresRunLog)
            s.prompts.register(ps.Prompt(id="hi", messages=[ps.user("hi {{x}}")], model="echo"))
            s.set_scoped_variable("user", "tone", "dry")
            inst = s.start("hi", variables={"x": "there"})
            run = await inst.send()
            got = s.runs.get(run.run_id)
            assert got.status == "success" and got.variables == run.variables
            assert got.messages == run.messages
            return run

    run = asyncio.run(go())
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT status FROM runs").fetchall() == [("success",)]
        assert con.execute("SELECT prompt_id FROM prompts").fetchall() == [("hi",)]
        assert con.execute("SELECT value FROM user_variables").fetchall() == [("dry",)]
    s2 = ps.Session(db=pg_url, user_id="u1")
    try:
        assert s2.runlog.fetch_scoped("u1", None, None)["user"] == {"tone": "dry"}
        assert s2.runlog.get_run(run.run_id) is not None
        assert s2.runlog.load_prompt("hi") is not None
    finally:
        s2.close()


def test_schema_matches_the_duckdb_log_after_migrating(pg_url: str, tmp_path: Any) -> None:
    duck = RunLog(str(tmp_path / "runs.duckdb"), "s1")
    pg = open_run_log(pg_url, "s2")
    try:
        local = duck.sql(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main' "
            "AND NOT internal ORDER BY table_name, column_index"
        ).fetchall()
        with psycopg.connect(pg_url) as con:
            remote = con.execute(
                "SELECT table_name, column_name FROM information_schema.columns "
                "WHERE table_schema = 'public' AND table_name <> 'promptstate_sessions' "
                "ORDER BY table_name, ordinal_position"
            ).fetchall()
            versions = con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        assert remote == local
        assert versions == duck.sql("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    finally:
        duck.close()
        pg.close()


def test_concurrent_migrations_apply_each_step_once(pg_url: str) -> None:
    code = textwrap.dedent(
        f"""
        from promptstate.runlog import PostgresRunLog
        PostgresRunLog({pg_url!r}, "m-" + __import__("uuid").uuid4().hex).close()
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT) for _ in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with psycopg.connect(pg_url) as con:
        rows = con.execute("SELECT version, count(*) FROM schema_migrations GROUP BY 1").fetchall()
    assert rows and all(n == 1 for _v, n in rows)


_WRITER = """
import asyncio, os, sys
import promptstate as ps
async def main():
    async with ps.Session(db=sys.argv[1]) as s:
        s.prompts.register(ps.Prompt(id="p", messages=[ps.user("n={{n}}")], model="echo"))
        inst = s.start("p", variables={"n": "0"})
        for i in range(int(sys.argv[2])):
            inst.set_variable("n", str(i))
            run = await inst.send()
            assert run.status == "success", run
asyncio.run(main())
"""


def test_eight_writer_processes_lose_and_duplicate_nothing(pg_url: str) -> None:
    n_procs, n_sends = 8, 500
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, pg_url, str(n_sends)],
            cwd=ROOT,
            env={**os.environ, "PROMPTSTATE_HOSTNAME": f"host-{i}"},
        )
        for i in range(n_procs)
    ]
    assert [p.wait(timeout=600) for p in procs] == [0] * n_procs
    with psycopg.connect(pg_url) as con:
        per_host = dict(
            con.execute(
                "SELECT hostname, count(DISTINCT variables->'n'->>'value') FROM runs "
                "WHERE status = 'success' GROUP BY 1"
            ).fetchall()
        )
        total, distinct = con.execute(
            "SELECT count(*), count(DISTINCT run_id) FROM runs"
        ).fetchone()
    assert per_host == {f"host-{i}": n_sends for i in range(n_procs)}  # 0 lost
    assert total == distinct == n_procs * n_sends  # 0 duplicated


_KILLED = """
import sys, time
from promptstate.models.run import RunResult
from promptstate.runlog import PostgresRunLog
log = PostgresRunLog(sys.argv[1], "victim", hostname="other-machine",
                     heartbeat_interval=0.2, heartbeat_expire=1.5)
for i in range(5):
    log.write_run(RunResult(run_id=f"v{i}", status="running", session_id="victim")).result()
print("ready", flush=True)
time.sleep(600)
"""


def test_a_killed_writers_runs_become_interrupted_by_heartbeat_expiry(pg_url: str) -> None:
    live = PostgresRunLog(pg_url, "survivor", heartbeat_interval=0.2, heartbeat_expire=1.5)
    try:
        for i in range(3):
            live.write_run(_run(i, "running", session="survivor")).result()
        victim = subprocess.Popen(
            [sys.executable, "-c", _KILLED, pg_url], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert victim.stdout is not None and victim.stdout.readline().strip() == "ready"
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        # the victim claims another host, so no pid check applies: only its heartbeat
        deadline = time.monotonic() + 60
        while _count(pg_url, "status = 'interrupted'") < 5 and time.monotonic() < deadline:
            time.sleep(0.2)  # the survivor's heartbeat sweeps expired sessions
        assert _count(pg_url, "status = 'interrupted' AND session_id = 'victim'") == 5
        assert _count(pg_url, "status = 'running' AND session_id = 'survivor'") == 3
    finally:
        live.close()


def test_postgres_restarted_mid_sweep_every_run_lands(pg_cluster: Any) -> None:
    url = pg_cluster.url(db=pg_cluster.database())
    log = PostgresRunLog(url, "restart", retry_for=120)
    futures = []
    try:
        for i in range(300):
            futures.append(log.write_run(_run(i)))
            if i == 100:
                pg_cluster.stop("immediate")  # a crash, as far as the writer can tell
            if i == 200:
                pg_cluster.start(fsync=True)  # durable from here on
            time.sleep(0.005)
        log.flush(timeout=180)
        errors = [f.exception() for f in futures]
        assert all(e is None or isinstance(e, ps.RunLogError) for e in errors)
        landed = _count(url)
        assert landed == sum(e is None for e in errors) == 300
        assert log.reconnects >= 2
    finally:
        log.close()


def test_postgres_down_for_good_ends_in_a_typed_error(pg_cluster: Any) -> None:
    url = pg_cluster.url(db=pg_cluster.database())
    log = PostgresRunLog(url, "down", retry_for=1.0)
    try:
        log.write_run(_run(1)).result(timeout=60)
        pg_cluster.stop("immediate")
        fut = log.write_run(_run(2))
        with pytest.raises(ps.RunLogError, match="within 1s"):
            fut.result(timeout=120)
    finally:
        pg_cluster.start(fsync=False)
        log.close()
    assert _count(url) == 1  # nothing half-written, and the error said so


def test_push_copies_a_duckdb_file_idempotently(pg_url: str, tmp_path: Any) -> None:
    path = str(tmp_path / "runs.duckdb")
    local = RunLog(path, "local")
    for i in range(20):
        local.write_run(_run(i, session="local"))
    local.save_prompt({"id": "p0", "version": "v1", "messages": []}, "db")
    local.set_scoped("project", "proj", "k", "v")
    local.close()
    first = ps.push_run_log(path, pg_url)
    assert first["runs"] == 20 and first["prompts"] == 1 and first["project_variables"] == 1
    again = ps.push_run_log(path, pg_url)
    assert set(again.values()) == {0}
    assert _count(pg_url) == 20
    out = subprocess.run(
        [sys.executable, "-m", "promptstate.cli", "push", "--from", path, "--to", pg_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "0 new rows" in out.stdout and _count(pg_url) == 20


def test_duckdb_options_are_refused_for_postgres(pg_url: str) -> None:
    with pytest.raises(TypeError):
        open_run_log("runs.duckdb", "x", heartbeat_interval=1.0)
    with pytest.raises(ps.RunLogError, match="heartbeat_expire"):
        PostgresRunLog(pg_url, uuid.uuid4().hex, heartbeat_interval=2, heartbeat_expire=1)


def test_evaluation_tables_are_written_like_the_files(pg_url: str) -> None:
    from promptstate.runlog.evalstore import SCORE_COLUMNS

    log = PostgresRunLog(pg_url, "evals")
    try:
        log.write_run(_run(1)).result()
        row = {c: None for c in SCORE_COLUMNS}
        row.update(score_id="sc1", run_id="r00001", scorer="exact", value=1.0, source="auto")
        log.write_scores([row]).result()
        log.write_scores([{**row, "value": 0.5}]).result()  # same key: updated, not duplicated
        meta = {"name": "d", "columns": ["q"], "variables": ["q"], "metadata": {}}
        meta.update(dataset_id="d1", version="v1", expected_column=None, created_at=None)
        rows = [{"row_id": "a", "position": 0, "data": {"q": "x"}}]
        log.save_dataset(meta, rows).result()
        log.save_dataset(meta, rows).result()  # the same version again: a no-op
    finally:
        log.close()
    with psycopg.connect(pg_url) as con:
        assert con.execute("SELECT score_id, value FROM scores").fetchall() == [("sc1", 0.5)]
        assert con.execute("SELECT row_id, data FROM dataset_rows").fetchall() == [
            ("a", {"q": "x"})
        ]
