"""The DuckDB run log: schema migrations, batched writes, SQL reads.

Writes go through one background thread that drains a queue and commits each batch in
one transaction (a group commit: ~5 ms per batch here whatever its size, against ~1 ms
per row for row-at-a-time autocommit). Callers get a future that resolves once their
row is durable, so "reported done" always means "on disk". Reducers never write here;
effects do.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from promptstate.errors import RunLogError, RunLogLockedError
from promptstate.runlog.readonly import check_read_only

__all__ = ["MIGRATIONS", "RUN_COLUMNS", "RunLog", "utc"]

# (version, name, statements): append-only; never edit a shipped migration.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "create_runs_prompts_scoped_variables",
        (
            """CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY,
                instance_id TEXT,
                prompt_id TEXT,
                prompt_version TEXT,
                provider TEXT,
                model TEXT,
                status TEXT NOT NULL,
                variables JSON,
                messages JSON,
                response TEXT,
                error TEXT,
                input_tokens BIGINT,
                output_tokens BIGINT,
                latency_ms DOUBLE,
                ttft_ms DOUBLE,
                started_at TIMESTAMP,
                finished_at TIMESTAMP,
                sweep_id TEXT,
                action_index BIGINT,
                state_hash TEXT,
                attempts INTEGER,
                cost_usd DOUBLE,
                cache_key TEXT,
                cache_hit BOOLEAN,
                settings JSON,
                session_id TEXT,
                pid INTEGER,
                hostname TEXT
            )""",
            """CREATE TABLE IF NOT EXISTS prompts (
                prompt_id TEXT NOT NULL,
                version TEXT NOT NULL,
                definition JSON NOT NULL,
                source TEXT,
                created_at TIMESTAMP,
                PRIMARY KEY (prompt_id, version)
            )""",
            """CREATE TABLE IF NOT EXISTS user_variables (
                user_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
                updated_at TIMESTAMP, PRIMARY KEY (user_id, name))""",
            """CREATE TABLE IF NOT EXISTS org_variables (
                org_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
                updated_at TIMESTAMP, PRIMARY KEY (org_id, name))""",
            """CREATE TABLE IF NOT EXISTS project_variables (
                project_id TEXT NOT NULL, name TEXT NOT NULL, value TEXT,
                updated_at TIMESTAMP, PRIMARY KEY (project_id, name))""",
        ),
    ),
)

RUN_COLUMNS: tuple[str, ...] = (
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
    "sweep_id",
    "action_index",
    "state_hash",
    "attempts",
    "cost_usd",
    "cache_key",
    "cache_hit",
    "settings",
    "session_id",
    "pid",
    "hostname",
)
_OPEN_STATUSES = frozenset({"running", "queued"})
_INSERT_RUNS = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) SELECT {', '.join(RUN_COLUMNS)} FROM _ps_batch"
)
_UPSERT_RUNS = _INSERT_RUNS.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1)
_UPDATE_RUNS = (
    "UPDATE runs SET "
    + ", ".join(f"{c} = _ps_batch.{c}" for c in RUN_COLUMNS if c != "run_id")
    + " FROM _ps_batch WHERE runs.run_id = _ps_batch.run_id"
)
_SCOPE_TABLES = {"user": "user_variables", "org": "org_variables", "project": "project_variables"}

# Sessions alive in this process, so a second session on the same file does not mark
# the first one's in-flight rows as interrupted.
_LIVE_SESSIONS: weakref.WeakValueDictionary[str, RunLog] = weakref.WeakValueDictionary()


@atexit.register
def _close_all() -> None:
    # Flush and stop every writer thread before the interpreter finalizes: pending runs
    # reach the file, and no daemon thread is torn down inside DuckDB's C++ code (which
    # aborts the process with "FATAL: exception not rethrown").
    for log in list(_LIVE_SESSIONS.values()):
        with contextlib.suppress(Exception):
            log.close()


def utc(ts: float | None) -> dt.datetime | None:
    """Epoch seconds to a naive UTC datetime (the run log stores UTC)."""
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(tzinfo=None)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)


@dataclass
class _Op:
    kind: str  # "run" | "prompt" | "scoped"
    key: Any
    data: Any
    future: concurrent.futures.Future[None]


class RunLog:
    """The run log of one session.

    A file DB is shared with other processes: DuckDB lets only one process open a file,
    so the connection is held only while there is work (released after ``hold_idle``
    seconds without any, and at least every ``max_hold`` seconds under load so other
    processes get their turn); opening retries lock conflicts with jittered backoff for up
    to ``lock_timeout`` seconds. Unflushed runs stay queued in memory meanwhile. Queries
    are materialized (Arrow) so a result never holds the file. ``exclusive=True`` keeps
    the file open for the whole session instead (fastest; other processes are locked out).

    Parameters
    ----------
    path : str or None
        A DuckDB file, or None for an in-memory database (lost when the session ends).
    session_id : str
        Stamped on every row this session writes.
    lock_timeout : float
        Seconds to keep retrying a file another process holds locked.
    exclusive : bool
        Hold the file for the whole session.
    """

    def __init__(
        self,
        path: str | None,
        session_id: str,
        lock_timeout: float = 60.0,
        exclusive: bool = False,
        hold_idle: float = 1.0,
        max_hold: float = 2.0,
    ) -> None:
        import duckdb

        self.path = None if path is None else os.fspath(path)
        self.session_id = session_id
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.shared = self.path is not None and not exclusive
        self.lock_timeout = lock_timeout
        self.hold_idle = hold_idle
        self.max_hold = max_hold
        self._duckdb = duckdb
        self._con_lock = threading.RLock()
        self._con: Any = None
        self._wcon: Any = None  # the writer thread's cursor of _con
        self._wcon_parent: Any = None
        self._contended = False
        self._opened_at = 0.0
        self._last_use = 0.0
        self._mem: Any = None
        self._cv = threading.Condition()
        self._queue: list[_Op] = []
        self._saved_prompts: dict[Any, concurrent.futures.Future[None]] = {}
        # ids of runs whose non-terminal row is committed (in flight); writer thread only
        self._open_rows: set[str] = set()
        self._inflight = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self.flushes = 0
        self.rows_written = 0
        self.opens = 0
        self.lock_waits = 0
        self.lock_wait_seconds = 0.0
        self.last_error: BaseException | None = None
        try:
            with self._use() as con:
                self._migrate(con)
                self.recovered = self._recover_interrupted(con)
        except BaseException:
            self._release(force=True)
            raise
        _LIVE_SESSIONS[session_id] = self
        if self.shared:
            self._ensure_thread()  # it also releases the idle connection

    # -- the connection ------------------------------------------------------------------------

    def _connect(self) -> Any:
        duckdb = self._duckdb
        target = ":memory:" if self.path is None else self.path
        deadline = time.monotonic() + self.lock_timeout
        t0 = time.monotonic()
        delay = 0.005
        tries = 0
        while True:
            tries += 1
            try:
                con = duckdb.connect(target)
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise RunLogError(f"cannot open run log {target!r}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise RunLogLockedError(
                        f"run log {target!r} stayed locked by another process for "
                        f"{self.lock_timeout:g}s ({tries} tries); close the other program "
                        "holding it (a DuckDB shell?) or use another db file"
                    ) from None
                # jitter so several waiting processes do not retry in lockstep
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 1.5, 0.02)
                continue
            except duckdb.Error as exc:
                raise RunLogError(f"cannot open run log {target!r}: {exc}") from None
            self._contended = tries > 1
            if tries > 1:
                self.lock_waits += 1
                self.lock_wait_seconds += time.monotonic() - t0
            self.opens += 1
            return con

    @contextlib.contextmanager
    def _use(self) -> Iterator[Any]:
        """The open connection (opened on demand); callers hold it only briefly."""
        with self._con_lock:
            if self._con is None:
                self._con = self._connect()
                self._opened_at = time.monotonic()
            try:
                yield self._con
            finally:
                self._last_use = time.monotonic()

    @contextlib.contextmanager
    def _writer_cursor(self) -> Iterator[Any]:
        """A cursor of the open connection for the writer thread alone.

        A relation a user holds (exclusive or in-memory mode) runs lazily on the main
        connection from their thread; DuckDB refuses two calls at once on one connection,
        so commits go through this duplicate instead.
        """
        with self._use() as con:
            if self._wcon is None or self._wcon_parent is not con:
                self._wcon, self._wcon_parent = con.cursor(), con
            yield self._wcon

    def _release(self, force: bool = False) -> bool:
        """Close the connection if shared and idle (or held too long); True if closed."""
        with self._con_lock:
            if self._con is None:
                return False
            now = time.monotonic()
            if not force and (
                not self.shared
                or (now - self._last_use < self.hold_idle and now - self._opened_at < self.max_hold)
            ):
                return False
            with contextlib.suppress(self._duckdb.Error):
                if self._wcon is not None:
                    self._wcon.close()
                self._con.close()
            self._con = self._wcon = self._wcon_parent = None
            return True

    def _migrate(self, con: Any) -> None:
        try:
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP)"
            )
            done = {r[0] for r in con.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, name, statements in MIGRATIONS:
                if version in done:
                    continue
                con.execute("BEGIN")
                try:
                    for stmt in statements:
                        con.execute(stmt)
                    con.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        [version, name, utc(time.time())],
                    )
                    con.execute("COMMIT")
                except Exception:
                    con.execute("ROLLBACK")
                    raise
        except self._duckdb.Error as exc:
            raise RunLogError(f"cannot migrate run log {self.path!r}: {exc}") from None

    def _recover_interrupted(self, con: Any) -> int:
        """Mark rows left ``running``/``queued`` by a dead process as ``interrupted``."""
        rows = con.execute(
            "SELECT run_id, pid, hostname, session_id FROM runs "
            "WHERE status IN ('running', 'queued')"
        ).fetchall()
        dead = [
            rid
            for rid, pid, host, sid in rows
            if (host == self.hostname and (pid is None or not _pid_alive(pid)))
            or (pid == self.pid and host == self.hostname and sid not in _LIVE_SESSIONS)
        ]
        if dead:
            con.execute("BEGIN")
            con.executemany(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = coalesce(error, 'the process running it ended before it finished') "
                "WHERE run_id = ?",
                [(utc(time.time()), rid) for rid in dead],
            )
            con.execute("COMMIT")
        return len(dead)

    # -- writing ----------------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._writer, name="promptstate-runlog", daemon=True
            )
            self._thread.start()

    def _submit(self, kind: str, key: Any, data: Any) -> concurrent.futures.Future[None]:
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cv:
            if self._closed:
                raise RunLogError("run log is closed")
            self._queue.append(_Op(kind, key, data, fut))
            self._ensure_thread()
            self._cv.notify()
        return fut

    def write_run(self, row: Mapping[str, Any]) -> concurrent.futures.Future[None]:
        """Upsert a full run row (keys: :data:`RUN_COLUMNS`); resolves once committed."""
        full = {c: row.get(c) for c in RUN_COLUMNS}
        full["session_id"] = self.session_id
        full["pid"] = self.pid
        full["hostname"] = self.hostname
        return self._submit("run", full["run_id"], full)

    def save_prompt(
        self, definition: Mapping[str, Any], source: str
    ) -> concurrent.futures.Future[None]:
        """Store a prompt version (first write of an (id, version) wins)."""
        key = (definition["id"], definition["version"])
        saved = self._saved_prompts.get(key)
        if saved is not None and not (saved.done() and saved.exception() is not None):
            return saved  # first write of an (id, version) wins: once per session is enough
        fut = self._submit("prompt", key, (dict(definition), source, utc(time.time())))
        self._saved_prompts[key] = fut
        return fut

    def set_scoped(
        self, scope: str, owner: str, name: str, value: str | None
    ) -> concurrent.futures.Future[None]:
        """Set (or delete, with None) a scoped variable."""
        if scope not in _SCOPE_TABLES:
            raise ValueError(f"scope must be one of {sorted(_SCOPE_TABLES)}")
        return self._submit("scoped", (scope, owner, name), value)

    def _writer(self) -> None:
        while True:
            with self._cv:
                while not self._queue and not self._closed:
                    if not self._cv.wait(timeout=self.hold_idle / 2 if self.shared else None):
                        self._release()  # idle: let other processes have the file
                if not self._queue and self._closed:
                    return
                batch, self._queue = self._queue, []
                self._inflight = len(batch)
            err = self._write_batch(batch)
            for op in batch:
                if err is None:
                    op.future.set_result(None)
                else:
                    op.future.set_exception(err)
            with self._cv:
                self._inflight = 0
                self._cv.notify_all()
            if self.shared and self._release() and self._contended:
                # another process waited for the file last time: give it a turn
                time.sleep(0.02 + random.random() * 0.02)

    def _write_batch(self, batch: list[_Op]) -> BaseException | None:
        runs: dict[str, dict[str, Any]] = {}
        prompts: dict[Any, Any] = {}
        scoped: dict[Any, Any] = {}
        for op in batch:  # later ops for the same key win: one row per run per batch
            {"run": runs, "prompt": prompts, "scoped": scoped}[op.kind][op.key] = op.data
        delay = 0.02
        for attempt in range(8):
            try:
                with self._writer_cursor() as con:
                    # a retry upserts: safe whatever rows a failed attempt assumed
                    self._commit(con, runs, prompts, scoped, upsert=attempt > 0)
                self.flushes += 1
                self.rows_written += len(runs)
                for rid, row in runs.items():  # committed: remember which rows exist
                    if row["status"] in _OPEN_STATUSES:
                        self._open_rows.add(rid)
                    else:
                        self._open_rows.discard(rid)
                return None
            except RunLogError as exc:  # locked for lock_timeout: keep failing loudly
                self.last_error = exc
                return exc
            except self._duckdb.Error as exc:
                self.last_error = exc
                with self._writer_cursor() as con, contextlib.suppress(self._duckdb.Error):
                    con.execute("ROLLBACK")
                if attempt == 7:
                    return RunLogError(
                        f"could not write {len(batch)} item(s) to the run log: {exc}"
                    )
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        return None

    def _commit(
        self,
        con: Any,
        runs: Mapping[str, Mapping[str, Any]],
        prompts: Mapping[Any, Any],
        scoped: Mapping[Any, Any],
        upsert: bool = False,
    ) -> None:
        import pyarrow as pa

        con.execute("BEGIN")
        # A run's first committed row is a plain INSERT, its later rows (the terminal row
        # after a committed 'running' one) an UPDATE: INSERT OR REPLACE costs ~6 ms per
        # batch here against ~3 ms for either, whatever the batch size.
        fresh = [r for rid, r in runs.items() if upsert or rid not in self._open_rows]
        known = [r for rid, r in runs.items() if not upsert and rid in self._open_rows]
        insert = _UPSERT_RUNS if upsert else _INSERT_RUNS
        for group, sql in ((fresh, insert), (known, _UPDATE_RUNS)):
            if not group:
                continue
            cols = {c: [r[c] for r in group] for c in RUN_COLUMNS}
            table = pa.table(cols, schema=_arrow_schema())
            con.register("_ps_batch", table)
            try:
                con.execute(sql)
            finally:
                con.unregister("_ps_batch")
        for (pid, version), (definition, source, at) in prompts.items():
            con.execute(
                "INSERT OR IGNORE INTO prompts VALUES (?, ?, ?, ?, ?)",
                [pid, version, json.dumps(definition, ensure_ascii=False), source, at],
            )
        for (scope, owner, name), value in scoped.items():
            table_name = _SCOPE_TABLES[scope]
            key = f"{scope}_id"
            if value is None:
                con.execute(f"DELETE FROM {table_name} WHERE {key} = ? AND name = ?", [owner, name])
            else:
                con.execute(
                    f"INSERT OR REPLACE INTO {table_name} ({key}, name, value, updated_at) "
                    "VALUES (?, ?, ?, ?)",
                    [owner, name, value, utc(time.time())],
                )
        con.execute("COMMIT")

    def flush(self, timeout: float | None = 120.0) -> None:
        """Block until everything submitted so far is committed (or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._queue or self._inflight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise RunLogError("timed out waiting for the run log to flush")
                self._cv.wait(remaining)

    @property
    def pending(self) -> int:
        """Writes queued in memory, not yet committed."""
        with self._cv:
            return len(self._queue) + self._inflight

    # -- reading ----------------------------------------------------------------------------

    def relation_from_arrow(self, table: Any) -> Any:
        """A DuckDB relation over an Arrow table, on its own cursor (safe across threads)."""
        with self._con_lock:
            if self._mem is None:
                self._mem = self._duckdb.connect(":memory:")
            # a cursor per result: DuckDB refuses concurrent calls on one connection, and
            # results are read from whichever thread holds them
            return self._mem.cursor().from_arrow(table)

    def sql(
        self,
        query: str,
        params: Iterable[Any] | None = None,
        *,
        read_only: bool = False,
        flush: bool = True,
    ) -> Any:
        """Run SQL on the log (after flushing pending writes, unless ``flush=False``).

        Returns a DuckDB relation.

        On a shared file the result is materialized, so it never keeps the file locked.
        ``read_only=True`` refuses anything but a plain SELECT over the log's tables
        (:class:`ReadOnlyQueryError`) and always materializes.
        """
        if not self.shared and not read_only:
            return self._query(query, params, read_only, flush, lambda rel: rel)
        table = self.arrow(query, params, read_only=read_only, flush=flush)
        return None if table is None else self.relation_from_arrow(table)

    def arrow(
        self,
        query: str,
        params: Iterable[Any] | None = None,
        *,
        read_only: bool = False,
        flush: bool = True,
    ) -> Any:
        """The query's whole result as an Arrow table (None for a statement with none)."""

        def fetch(rel: Any) -> Any:
            # duckdb >= 1.4 names it to_arrow_table; older ones fetch_arrow_table
            return (getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table)()

        return self._query(query, params, read_only, flush, fetch)

    def _query(
        self,
        query: str,
        params: Iterable[Any] | None,
        read_only: bool,
        flush: bool,
        finish: Callable[[Any], Any],
    ) -> Any:
        if flush:  # so the caller sees every run it was told is done
            self.flush()
        try:
            with self._use() as con:
                if read_only:
                    check_read_only(con, query)
                rel = con.sql(query, params=list(params)) if params is not None else con.sql(query)
                return None if rel is None else finish(rel)
        except self._duckdb.Error as exc:
            raise RunLogError(f"query failed: {exc}") from exc

    def fetch_scoped(
        self, user_id: str | None, org_id: str | None, project_id: str | None
    ) -> dict[str, dict[str, str]]:
        """Read the three scoped-variable layers for the given owners."""
        self.flush()
        out: dict[str, dict[str, str]] = {"user": {}, "org": {}, "project": {}}
        with self._use() as con:
            for scope, owner in (("user", user_id), ("org", org_id), ("project", project_id)):
                if owner is None:
                    continue
                rows = con.execute(
                    f"SELECT name, value FROM {_SCOPE_TABLES[scope]} WHERE {scope}_id = ? "
                    "AND value IS NOT NULL ORDER BY name",
                    [owner],
                ).fetchall()
                out[scope] = dict(rows)
        return out

    def load_prompt(self, prompt_id: str, version: str | None = None) -> dict[str, Any] | None:
        """A stored prompt version (the newest when ``version`` is None) as a dict, or None."""
        self.flush()
        query = "SELECT definition FROM prompts WHERE prompt_id = ?"
        params: list[Any] = [prompt_id]
        if version is not None:
            query += " AND version = ?"
            params.append(version)
        with self._use() as con:
            rows = con.execute(query + " ORDER BY created_at DESC LIMIT 1", params).fetchall()
        return None if not rows else dict(json.loads(rows[0][0]))

    def prompt_ids(self) -> list[str]:
        """Ids of the prompts stored in the DB."""
        self.flush()
        with self._use() as con:
            rows = con.execute("SELECT DISTINCT prompt_id FROM prompts").fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        """Flush and close; idempotent."""
        with self._cv:
            if self._closed:
                return
        try:
            self.flush(timeout=120)
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()
            if self._thread is not None:
                self._thread.join(timeout=10)
            _LIVE_SESSIONS.pop(self.session_id, None)
            self._release(force=True)
            if self._mem is not None:
                with contextlib.suppress(self._duckdb.Error):
                    self._mem.close()


_SCHEMA_CACHE: list[Any] = []


def _arrow_schema() -> Any:
    if not _SCHEMA_CACHE:
        import pyarrow as pa

        types: dict[str, Callable[[], Any]] = {
            "input_tokens": pa.int64,
            "output_tokens": pa.int64,
            "action_index": pa.int64,
            "attempts": pa.int32,
            "pid": pa.int32,
            "latency_ms": pa.float64,
            "ttft_ms": pa.float64,
            "cost_usd": pa.float64,
            "cache_hit": pa.bool_,
            "started_at": lambda: pa.timestamp("us"),
            "finished_at": lambda: pa.timestamp("us"),
        }
        _SCHEMA_CACHE.append(pa.schema([(c, types.get(c, pa.string)()) for c in RUN_COLUMNS]))
    return _SCHEMA_CACHE[0]
