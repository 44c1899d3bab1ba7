"""The DuckDB run log: the engine's run sink and run reader.

It composes the pieces of this package: :class:`Connection` (file sharing, DuckDB's
hardened configuration), the migrations, crash recovery, the :class:`Writer` thread that
alone commits, and the read paths in ``queries``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import time
import weakref
from collections.abc import Iterable
from typing import Any

from promptstate.errors import RunLogError
from promptstate.models.run import RunResult, utc
from promptstate.runlog import queries
from promptstate.runlog.connection import Connection
from promptstate.runlog.migrations import MIGRATIONS
from promptstate.runlog.sink import SinkBase
from promptstate.runlog.writer import Writer

__all__ = ["RunLog"]

log = logging.getLogger("promptstate")

# Sessions alive in this process, so a second session on the same file does not mark
# the first one's in-flight rows as interrupted.
_LIVE_SESSIONS: weakref.WeakValueDictionary[str, RunLog] = weakref.WeakValueDictionary()
_OUR_TABLES = ("runs", "prompts", "user_variables", "org_variables", "project_variables")


@atexit.register
def _close_all() -> None:
    # Flush and stop every writer thread before the interpreter finalizes: pending runs
    # reach the file, and no daemon thread is torn down inside DuckDB's C++ code (which
    # aborts the process with "FATAL: exception not rethrown").
    for runlog in list(_LIVE_SESSIONS.values()):
        try:
            runlog.close()
        except Exception:
            log.exception("promptstate: closing a run log at exit failed")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLog(SinkBase):
    """The run log of one session.

    Parameters
    ----------
    path : str or None
        A DuckDB file, or None for an in-memory database (lost when the session ends).
    session_id : str
        Stamped on every row this session writes.
    lock_timeout : float
        Seconds to keep retrying a file another process holds locked.
    exclusive : bool
        Hold the file for the whole session (fastest; other processes are locked out).
    query_timeout : float
        Seconds a read-only query may run before it is interrupted.
    """

    def __init__(
        self,
        path: str | None,
        session_id: str,
        lock_timeout: float = 60.0,
        exclusive: bool = False,
        hold_idle: float = 1.0,
        max_hold: float = 2.0,
        query_timeout: float = queries.DEFAULT_QUERY_TIMEOUT,
    ) -> None:
        self.path = None if path is None else os.fspath(path)
        self.session_id = session_id
        self.hostname = socket.gethostname()
        self.pid = os.getpid()
        self.shared = self.path is not None and not exclusive
        self.query_timeout = query_timeout
        self._conn = Connection(
            self.path,
            shared=self.shared,
            lock_timeout=lock_timeout,
            hold_idle=hold_idle,
            max_hold=max_hold,
        )
        self._writer = Writer(self._conn)
        self._init_sink()
        self._mem: Any = None
        self._closed = False
        try:
            with self._conn.cursor() as cur:
                self._migrate(cur)
                self.recovered = self._recover_interrupted(cur)
        except BaseException:
            self._conn.release(force=True)
            raise
        _LIVE_SESSIONS[session_id] = self
        if self.shared:
            self._writer.ensure_thread()  # it also releases the idle connection

    # -- counters kept for tests and benchmarks --------------------------------------------

    @property
    def opens(self) -> int:
        """How often the file was opened (shared mode opens on demand)."""
        return self._conn.opens

    @property
    def lock_waits(self) -> int:
        """Opens that had to wait for another process."""
        return self._conn.lock_waits

    @property
    def lock_wait_seconds(self) -> float:
        """Seconds spent waiting for other processes."""
        return self._conn.lock_wait_seconds

    # -- schema ----------------------------------------------------------------------------

    def _migrate(self, cur: Any) -> None:
        try:
            tables = {
                r[0] for r in cur.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
            if "schema_migrations" not in tables and tables & set(_OUR_TABLES):
                # someone else's tables: touch nothing
                raise RunLogError(
                    f"{self.path!r} already has table(s) "
                    f"{', '.join(sorted(tables & set(_OUR_TABLES)))} that promptstate did not "
                    "create; use another file for the run log"
                )
            cur.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP)"
            )
            done = {r[0] for r in cur.execute("SELECT version FROM schema_migrations").fetchall()}
            for m in MIGRATIONS:
                if m.version in done:
                    continue
                cur.execute("BEGIN")
                try:
                    for stmt in m.statements:
                        cur.execute(stmt)
                    cur.execute(
                        "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                        [m.version, m.name, utc(time.time())],
                    )
                    cur.execute("COMMIT")
                except Exception:
                    cur.execute("ROLLBACK")
                    raise
        except self._conn.error as exc:
            raise RunLogError(f"cannot migrate run log {self.path!r}: {exc}") from None

    def _recover_interrupted(self, cur: Any) -> int:
        """Mark rows left ``running`` by a dead process of this host as ``interrupted``."""
        rows = cur.execute(
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
            cur.execute("BEGIN")
            cur.executemany(
                "UPDATE runs SET status = 'interrupted', finished_at = ?, "
                "error = coalesce(error, 'the process running it ended before it finished') "
                "WHERE run_id = ?",
                [(utc(time.time()), rid) for rid in dead],
            )
            cur.execute("COMMIT")
        return len(dead)

    # -- the run sink ------------------------------------------------------------------------

    # -- reading ------------------------------------------------------------------------------

    def relation_from_arrow(self, table: Any) -> Any:
        """A DuckDB relation over an Arrow table, on its own cursor (safe across threads)."""
        import duckdb

        with self._saved_lock:
            if self._mem is None:
                self._mem = duckdb.connect(":memory:")
            # a cursor per result: results are read from whichever thread holds them
            return self._mem.cursor().from_arrow(table)

    def sql(
        self,
        query: str,
        params: Iterable[Any] | None = None,
        *,
        read_only: bool = False,
        flush: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """Run SQL on the log (after flushing pending writes) and return a DuckDB relation.

        On a shared file, or with ``read_only=True``, the result is materialized, so it
        never keeps the file locked. ``read_only=True`` runs in a read-only transaction
        with a time limit (:class:`ReadOnlyQueryError` when refused or interrupted).
        """
        if flush:  # so the caller sees every run it was told is done
            self.flush()
        if not self.shared and not read_only:
            # a lazy relation on the connection itself (exclusive / in-memory modes)
            with self._conn.main() as con:
                try:
                    return (
                        con.sql(query, params=list(params))
                        if params is not None
                        else con.sql(query)
                    )
                except self._conn.error as exc:
                    raise RunLogError(f"query failed: {exc}") from exc
        table = self.arrow(query, params, read_only=read_only, flush=False, timeout=timeout)
        return None if table is None else self.relation_from_arrow(table)

    def arrow(
        self,
        query: str,
        params: Iterable[Any] | None = None,
        *,
        read_only: bool = False,
        flush: bool = True,
        timeout: float | None = None,
    ) -> Any:
        """The query's whole result as an Arrow table (None for a statement with none)."""
        if flush:
            self.flush()
        if read_only and timeout is None:
            timeout = self.query_timeout
        return queries.run_query(self._conn, query, params, read_only=read_only, timeout=timeout)

    def get_run(self, run_id: str) -> RunResult | None:
        """One run (after flushing), or None."""
        self.flush()
        return queries.get_run(self._conn, run_id)

    def cached_response(self, cache_key: str) -> dict[str, Any] | None:
        """The newest successful reply for ``cache_key`` (earlier sessions included)."""
        return queries.cached_response(self._conn, cache_key)

    def fetch_scoped(
        self, user_id: str | None, org_id: str | None, project_id: str | None
    ) -> dict[str, dict[str, str]]:
        """Read the three scoped-variable layers for the given owners."""
        self.flush()
        return queries.fetch_scoped(self._conn, user_id, org_id, project_id)

    def load_prompt(self, prompt_id: str, version: str | None = None) -> dict[str, Any] | None:
        """A stored prompt version (the newest when ``version`` is None) as a dict, or None."""
        self.flush()
        return queries.load_prompt(self._conn, prompt_id, version)

    def prompt_ids(self) -> list[str]:
        """Ids of the prompts stored in the DB."""
        self.flush()
        return queries.prompt_ids(self._conn)

    def close(self) -> None:
        """Flush and close; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        finally:
            _LIVE_SESSIONS.pop(self.session_id, None)
            self._conn.release(force=True)
            if self._mem is not None:
                with contextlib.suppress(Exception):
                    self._mem.close()
