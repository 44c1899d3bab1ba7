from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import promptstate as ps
from promptstate.models.run import RUN_COLUMNS, column_sql
from promptstate.runlog.migrations import MIGRATIONS

DESIGN_COLUMNS = [
    "run_id",
    "instance_id",
    "prompt_id",
    "prompt_version",
    "provider",
    "model",
    "status",
    "variables",
    "messages",
    "response",
    "error",
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "ttft_ms",
    "started_at",
    "finished_at",
]


def test_schema_has_design_columns_and_migrations(tmp_path: Path) -> None:
    with ps.Session(db=str(tmp_path / "s.duckdb")) as s:
        cols = [
            r[0]
            for r in s.runs.sql(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'runs' ORDER BY ordinal_position"
            ).fetchall()
        ]
        assert cols[: len(DESIGN_COLUMNS)] == DESIGN_COLUMNS
        assert {
            "sweep_id",
            "action_index",
            "state_hash",
            "attempts",
            "cost_usd",
            "cache_hit",
        } <= set(cols)
        assert cols == list(RUN_COLUMNS)
        # the migrations and the one run schema agree on every column's type
        types = dict(
            s.runs.sql(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_name = 'runs'"
            ).fetchall()
        )
        for c in RUN_COLUMNS:
            assert types[c] == column_sql(c).split()[0].replace("TEXT", "VARCHAR"), c
        applied = s.runs.sql(
            "SELECT version, name FROM schema_migrations ORDER BY version"
        ).fetchall()
        assert applied == [(m.version, m.name) for m in MIGRATIONS]
        tables = {r[0] for r in s.runs.sql("SHOW TABLES").fetchall()}
        assert {"runs", "prompts", "user_variables", "org_variables", "project_variables"} <= tables
    with ps.Session(db=str(tmp_path / "s.duckdb")) as again:  # reopening re-applies nothing
        assert again.runs.sql("SELECT count(*) FROM schema_migrations").fetchall() == [
            (len(MIGRATIONS),)
        ]


def test_sql_returns_a_duckdb_relation(tmp_path: Path) -> None:
    import asyncio

    s = ps.Session(db=str(tmp_path / "r.duckdb"))
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
    asyncio.run(s.start("p", variables={"x": "hello"}).send())
    rel = s.runs.sql("SELECT prompt_id, status, response FROM runs")
    assert rel.fetchall() == [("p", "success", "hello")]
    assert rel.df()["response"].tolist() == ["hello"]
    assert rel.arrow().read_all().num_rows == 1  # duckdb >= 1.4: a RecordBatchReader
    assert s.runs.sql("SELECT response FROM runs WHERE prompt_id = ?", ["p"]).fetchall() == [
        ("hello",)
    ]
    with pytest.raises(ps.RunLogError, match="Catalog"):
        s.runs.sql("SELECT * FROM missing_table")
    s.close()


def test_unopenable_db_raises_typed_error(tmp_path: Path) -> None:
    with pytest.raises(ps.RunLogError):
        ps.Session(db=str(tmp_path))  # a directory
    junk = tmp_path / "junk.duckdb"
    junk.write_bytes(b"this is not a duckdb file" * 100)
    with pytest.raises(ps.RunLogError):
        ps.Session(db=str(junk))
    assert junk.read_bytes() == b"this is not a duckdb file" * 100


def test_db_locked_by_another_process_is_a_typed_error(tmp_path: Path) -> None:
    db = tmp_path / "locked.duckdb"
    ps.Session(db=str(db)).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import duckdb, sys, time
            c = duckdb.connect({str(db)!r})
            print('ready', flush=True)
            sys.stdin.read()
        """),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        from promptstate.runlog.log import RunLog

        with pytest.raises(ps.RunLogLockedError, match="locked"):
            RunLog(str(db), "x", lock_timeout=0.5)
    finally:
        holder.communicate("")


def test_rows_left_running_by_a_killed_process_become_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    script = textwrap.dedent(f"""
        import asyncio, os, signal, sys
        import promptstate as ps
        s = ps.Session(db={str(db)!r})
        s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{{{x}}}}")]))
        async def main():
            done = await s.start("p", variables={{"x": "finished"}}).send()
            print("done", done.run_id, flush=True)
            slow = s.start("p", variables={{"x": " ".join(["w"] * 1000)}})
            t = asyncio.create_task(slow.send(settings={{"echo_delay": 0.05}}))
            while slow.status != "running":
                await asyncio.sleep(0.01)
            s.runs.flush()
            print("running", flush=True)
            await t
        asyncio.run(main())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    done_line = proc.stdout.readline().split()
    assert done_line[0] == "done"
    assert proc.stdout.readline().strip() == "running"
    os.kill(proc.pid, 9)
    proc.wait()
    with ps.Session(db=str(db)) as s:
        rows = dict(s.runs.sql("SELECT run_id, status FROM runs").fetchall())
        assert rows[done_line[1]] == "success"
        assert sorted(rows.values()) == ["interrupted", "success"]
        assert s.runlog.recovered == 1


def test_second_session_in_same_process_does_not_interrupt_the_first(tmp_path: Path) -> None:
    import asyncio

    db = str(tmp_path / "two.duckdb")

    async def main() -> None:
        a = ps.Session(db=db)
        a.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
        inst = a.start("p", variables={"x": "a b c d"})
        t = asyncio.create_task(inst.send(settings={"echo_delay": 0.05}))
        while inst.status != "running":
            await asyncio.sleep(0.01)
        a.runs.flush()
        b = ps.Session(db=db)
        assert b.runlog.recovered == 0
        run = await t
        assert run.status == "success"
        b.close()
        a.close()

    asyncio.run(main())


@pytest.mark.parametrize("db", ["memory", "file"])
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("DELETE FROM runs", "not DELETE"),
        ("UPDATE runs SET status = 'x'", "not UPDATE"),
        ("CREATE TABLE t (a INT)", "not CREATE"),
        ("ATTACH 'other.duckdb'", "not ATTACH"),
        ("COPY runs TO 'out.csv'", "not COPY"),
        ("INSTALL httpfs", "not LOAD"),
        ("LOAD httpfs", "not LOAD"),
        ("SET threads = 1", "not SET"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT * FROM read_parquet('x.parquet')", "read_parquet"),
        ("SELECT * FROM '/etc/passwd'", "reading files"),
        ("SELECT * FROM glob('/*')", "glob"),
        ("SELECT * FROM query('DELETE FROM runs')", "query"),
        ("SELECT 1; DELETE FROM runs", "one statement"),
        ("SELECT (SELECT count(*) FROM read_text('/etc/hosts'))", "read_text"),
    ],
)
def test_read_only_path_refuses_writes_and_file_access(
    tmp_path: Path, db: str, query: str, reason: str
) -> None:
    s = ps.Session(db=None if db == "memory" else str(tmp_path / "ro.duckdb"))
    before = s.runs.sql("SELECT count(*) FROM runs").fetchall()
    with pytest.raises(ps.ReadOnlyQueryError, match=reason):
        s.runs.sql(query, read_only=True)
    assert s.runs.sql("SELECT count(*) FROM runs").fetchall() == before
    assert not (tmp_path / "out.csv").exists()
    s.close()


def test_read_only_select_and_paging(tmp_path: Path) -> None:
    import asyncio

    s = ps.Session(db=str(tmp_path / "page.duckdb"))
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))

    async def many() -> None:
        await asyncio.gather(
            *(s.start("p", variables={"x": f"{i:04d}"}).send() for i in range(300))
        )

    asyncio.run(many())
    cols, rows, total = s.runs.page(
        "SELECT response FROM runs ORDER BY response", offset=100, limit=3
    )
    assert (cols, rows, total) == (["response"], [("0100",), ("0101",), ("0102",)], 300)
    rel = s.runs.sql(
        "WITH r AS (SELECT * FROM runs) SELECT count(*) FROM r JOIN prompts USING (prompt_id)",
        read_only=True,
    )
    assert rel.fetchall() == [(300,)]
    with pytest.raises(ps.RunLogError, match="Catalog"):
        s.runs.page("SELECT * FROM nope")
    s.close()


def test_results_can_be_read_from_several_threads(tmp_path: Path) -> None:
    import asyncio
    import threading

    s = ps.Session(db=str(tmp_path / "threads.duckdb"))
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))

    async def many() -> None:
        await asyncio.gather(*(s.start("p", variables={"x": str(i)}).send() for i in range(50)))

    asyncio.run(many())
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                assert s.runs.page("SELECT * FROM runs", 0, 10)[2] == 50
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    s.close()


def test_lazy_relations_read_while_the_writer_commits() -> None:
    import asyncio
    import threading

    s = ps.Session()  # in-memory: sql() returns lazy relations on the main connection
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                s.runs.sql("SELECT count(*) FROM runs").fetchall()
            except BaseException as exc:
                errors.append(exc)

    async def many() -> None:
        await asyncio.gather(*(s.start("p", variables={"x": str(i)}).send() for i in range(400)))

    t = threading.Thread(target=reader)
    t.start()
    try:
        asyncio.run(many())
    finally:
        done.set()
        t.join()
    assert not errors, errors[0]
    assert s.runs.count() == 400
    s.close()


def test_under_load_every_commit_is_on_disk_before_its_future_resolves(tmp_path: Path) -> None:
    # Eight threads each submit a row and wait for it, 50 times: the writer sees company
    # and holds batches open (runlog/writer.py GROUP_WINDOW). Each resolved future must
    # mean the row is committed: a query right after sees it.
    import concurrent.futures

    from promptstate.runlog.log import RunLog

    path = str(tmp_path / "load.duckdb")
    log = RunLog(path, "s-load")
    template = {c: None for c in RUN_COLUMNS} | {"status": "success", "prompt_id": "p"}
    missing: list[str] = []

    def worker(k: int) -> None:
        for i in range(50):
            rid = f"r{k}-{i}"
            log.write_run({**template, "run_id": rid}).result(timeout=60)
            got = log.sql(f"SELECT count(*) FROM runs WHERE run_id = '{rid}'").fetchall()
            if got != [(1,)]:
                missing.append(rid)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert missing == []
    # a flush while a batch is held open commits it without waiting out the window
    held = [log.write_run({**template, "run_id": f"h{i}"}) for i in range(3)]
    log.flush(timeout=60)
    assert all(f.done() for f in held)
    assert log.sql("SELECT count(*) FROM runs").fetchall() == [(403,)]
    assert log.rows_written == 403
    log.close()


def test_a_batch_reads_back_the_same_as_rows_inserted_one_by_one(tmp_path: Path) -> None:
    # A batch goes in as one list parameter per column (runlog/writer.py), cast to each
    # column's type: it must store exactly what one-row inserts store.
    import datetime as dt

    from promptstate.runlog.log import RunLog

    at = dt.datetime(2026, 12, 2, 17, 0, 0, 123456)

    def row(i: int, status: str) -> dict[str, object]:
        r: dict[str, object] = {c: None for c in RUN_COLUMNS}
        r |= {"run_id": f"r{i:02d}", "status": status, "prompt_id": "p", "started_at": at}
        if i % 3:  # every other shape of value, and NULLs
            r |= {
                "response": 'é✓ "quoted" \n' * i,
                "variables": '{"x": "ünï", "n": ' + str(i) + "}",
                "input_tokens": 2**40 + i,
                "latency_ms": i / 7,
                "cache_hit": i % 2 == 0,
                "attempts": i,
                "finished_at": at + dt.timedelta(seconds=i),
            }
        return r

    def stored(log: RunLog) -> list[tuple[object, ...]]:
        return log.sql(
            "SELECT * EXCLUDE (session_id, pid, hostname) FROM runs ORDER BY run_id"
        ).fetchall()

    logs = {}
    for how in ("batch", "one by one"):
        log = RunLog(str(tmp_path / f"{how}.duckdb"), "s")
        running = [row(i, "running") for i in range(20)]
        done = [row(i, "success") for i in range(20)]
        if how == "batch":  # an INSERT batch, then an UPDATE batch of the same runs
            log._writer.submit("runs", "r00", running).result(timeout=60)
            log._writer.submit("runs", "r00", done).result(timeout=60)
        else:
            for r in running + done:
                log._writer.submit("run", r["run_id"], r).result(timeout=60)
        logs[how] = log
    assert stored(logs["batch"]) == stored(logs["one by one"])
    assert len(stored(logs["batch"])) == 20
    assert {r[6] for r in stored(logs["batch"])} == {"success"}
    for log in logs.values():
        log.close()


def test_a_lone_statement_that_fails_is_retried_and_lands_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A batch of one statement runs without BEGIN/COMMIT (runlog/writer.py). A failure of
    # that statement must leave no transaction behind: the retry lands the row once, and
    # the next batches still commit.
    import contextlib
    from collections.abc import Iterator
    from typing import Any

    import duckdb

    from promptstate.runlog.log import RunLog

    log = RunLog(str(tmp_path / "lone.duckdb"), "s")
    conn = log._writer._conn
    real_cursor = conn.cursor
    seen: list[str] = []
    failures = {"INSERT INTO runs": 1, "UPDATE runs": 1}

    class Flaky:
        def __init__(self, cur: Any) -> None:
            self._cur = cur

        def execute(self, sql: str, params: Any = None) -> Any:
            seen.append(sql.split(" (")[0])
            for head, left in failures.items():
                if left and sql.startswith(head):
                    failures[head] = left - 1
                    raise duckdb.IOException("injected write failure")
            return self._cur.execute(sql) if params is None else self._cur.execute(sql, params)

    @contextlib.contextmanager
    def flaky_cursor() -> Iterator[Any]:
        with real_cursor() as cur:
            yield Flaky(cur)

    monkeypatch.setattr(conn, "cursor", flaky_cursor)
    template = {c: None for c in RUN_COLUMNS} | {"prompt_id": "p"}
    log.write_run({**template, "run_id": "a", "status": "running"}).result(timeout=60)
    log.write_run({**template, "run_id": "a", "status": "success"}).result(timeout=60)
    rows = [{**template, "run_id": f"b{i}", "status": "success"} for i in range(3)]
    log._writer.submit("runs", "b0", rows).result(timeout=60)
    log.write_run({**template, "run_id": "c", "status": "error"}).result(timeout=60)
    assert failures == {"INSERT INTO runs": 0, "UPDATE runs": 0}
    assert seen[0] == "INSERT INTO runs"  # the lone row went in as its own transaction
    assert seen.count("BEGIN") == seen.count("COMMIT") == 0
    monkeypatch.undo()
    got = log.sql("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    assert got == [
        ("a", "success"),
        ("b0", "success"),
        ("b1", "success"),
        ("b2", "success"),
        ("c", "error"),
    ]
    log.close()


def test_a_batch_is_held_open_only_under_load_not_after_an_idle_gap() -> None:
    # The writer's hold policy on crafted state (no thread, no clock): a batch waits for
    # company only when the last one had company and this one began while it was being
    # written; a lone op after an idle gap (one send after a sweep) goes at once.
    import concurrent.futures

    from promptstate.runlog.writer import _GROUP_MAX, GROUP_WINDOW, Writer, _Op

    w = Writer(connection=None)  # type: ignore[arg-type]
    op = _Op("run", "r1", {}, concurrent.futures.Future())
    w._queue = [op]
    w._taken_at = 100.0
    w._queued_at = 100.0 + GROUP_WINDOW / 10  # came while the last batch was written
    now = w._queued_at + GROUP_WINDOW / 10
    assert w._hold(now) == 0.0  # the last batch was alone: no load
    w._loaded = True
    assert w._hold(now) == pytest.approx(GROUP_WINDOW * 0.9)
    assert w._hold(w._queued_at + GROUP_WINDOW) <= 0.0  # the window is over
    w._queued_at = 100.0 + 2 * GROUP_WINDOW  # the writer sat idle longer than a window
    assert w._hold(w._queued_at) == 0.0
    w._queued_at = 100.0
    for state in ("_flushing", "_closed"):
        setattr(w, state, 1)
        assert w._hold(now) == 0.0, state
        setattr(w, state, 0 if state == "_flushing" else False)
    assert w._hold(now) > 0
    w._queue = [op] * _GROUP_MAX  # a full batch goes at once
    assert w._hold(now) == 0.0
