"""The Postgres run log: the engine's run sink and reader, for a team.

Same public methods and guarantees as the DuckDB :class:`~promptstate.runlog.RunLog`:
a run reported done is committed; many processes on many machines write at once
without loss or duplicates (``run_id`` is the primary key and every write an upsert);
runs of a session that died are marked ``interrupted`` once its heartbeat expires.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import socket
import weakref
from collections.abc import Iterable
from typing import Any, cast

from promptstate.errors import RunLogError
from promptstate.models.run import RunResult
from promptstate.runlog import queries as duck_queries
from promptstate.runlog.connection import Connection
from promptstate.runlog.postgres.connection import connect, display_url
from promptstate.runlog.postgres.heartbeat import Heartbeat
from promptstate.runlog.postgres.migrations import migrate
from promptstate.runlog.postgres.mirror import DEFAULT_OVERLAP
from promptstate.runlog.postgres.queries import DuckDBOverPostgres, Lookups
from promptstate.runlog.postgres.writer import PgWriter
from promptstate.runlog.sink import SinkBase

__all__ = ["PostgresRunLog"]

log = logging.getLogger("promptstate")

_LIVE: weakref.WeakValueDictionary[str, PostgresRunLog] = weakref.WeakValueDictionary()


@atexit.register
def _close_all() -> None:
    # queued runs reach the server before the interpreter (and the writer thread) ends
    for runlog in list(_LIVE.values()):
        try:
            runlog.close()
        except Exception:
            log.exception("promptstate: closing a Postgres run log at exit failed")


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise RunLogError(f"${name} must be a number of seconds, not {raw!r}") from None


class PostgresRunLog(SinkBase):
    """The run log of one session, in a Postgres database a team shares.

    Parameters
    ----------
    url : str
        ``postgresql://user@host:port/dbname`` (a role that may write the log's tables).
    session_id : str
        Stamped on every row this session writes.
    query_url : str, optional
        The role ``sql()`` queries with (``$PROMPTSTATE_QUERY_DB``); ideally one granted
        SELECT only (see docs/team.md). Defaults to ``url``; either way the database is
        attached read-only.
    heartbeat_interval, heartbeat_expire : float
        Seconds between heartbeats, and the age after which a session counts as dead
        (``$PROMPTSTATE_HEARTBEAT_INTERVAL`` / ``$PROMPTSTATE_HEARTBEAT_EXPIRE``).
    retry_for : float
        Seconds the writer keeps retrying while Postgres is unreachable before the
        pending writes fail with :class:`RunLogError`.
    hostname : str, optional
        Recorded with each run (``$PROMPTSTATE_HOSTNAME``, else the machine's name).
    mirror : bool
        Answer queries on ``runs`` from a local in-memory copy of the finished runs,
        refreshed incrementally before each query (see docs/team.md); False reads
        every row through the attach instead.
    mirror_interval, mirror_overlap : float
        Least seconds between two refreshes of the mirror (a refresh always follows
        this session's own commits), and seconds of ``finished_at`` re-read by each.
    """

    _writer: PgWriter

    shared = True

    def __init__(
        self,
        url: str,
        session_id: str,
        *,
        query_url: str | None = None,
        heartbeat_interval: float | None = None,
        heartbeat_expire: float | None = None,
        retry_for: float = 300.0,
        hostname: str | None = None,
        query_timeout: float = duck_queries.DEFAULT_QUERY_TIMEOUT,
        connect_timeout: float = 30.0,
        mirror: bool = True,
        mirror_interval: float = 1.0,
        mirror_overlap: float = DEFAULT_OVERLAP,
    ) -> None:
        self.url = url
        self.path = display_url(url)
        self.session_id = session_id
        self.query_url = query_url or os.environ.get("PROMPTSTATE_QUERY_DB") or url
        self.hostname = hostname or os.environ.get("PROMPTSTATE_HOSTNAME") or socket.gethostname()
        self.pid = os.getpid()
        self.query_timeout = query_timeout
        self._mirror_options: dict[str, Any] = {
            "mirror": mirror,
            "mirror_interval": mirror_interval,
            "mirror_overlap": mirror_overlap,
        }
        self._seen_written = -1
        interval = (
            heartbeat_interval
            if heartbeat_interval is not None
            else _env_float("PROMPTSTATE_HEARTBEAT_INTERVAL", 5.0)
        )
        expire = (
            heartbeat_expire
            if heartbeat_expire is not None
            else _env_float("PROMPTSTATE_HEARTBEAT_EXPIRE", max(30.0, 6 * interval))
        )
        if not (interval > 0 and expire > interval):
            raise RunLogError("heartbeat_expire must be longer than heartbeat_interval (> 0)")
        self._closed = False
        self._init_sink()
        self._duck: DuckDBOverPostgres | None = None
        self._mem: Any = None
        self._admin = connect(url, timeout=connect_timeout)
        try:
            migrate(self._admin)
            self._heartbeat = Heartbeat(
                url,
                session_id,
                hostname=self.hostname,
                pid=self.pid,
                interval=interval,
                expire_after=expire,
                live=lambda sid: sid in _LIVE,
            )
            _LIVE[session_id] = self
            self.recovered = self._heartbeat.register(self._admin)
        except BaseException:
            _LIVE.pop(session_id, None)
            self._admin.close()
            raise
        self._writer = PgWriter(url, retry_for=retry_for)
        self._lookups = Lookups(url)

    # -- counters ------------------------------------------------------------------------

    @property
    def reconnects(self) -> int:
        """Connections the writer opened (1 + reconnections after failures)."""
        return self._writer.reconnects

    @property
    def heartbeat(self) -> Heartbeat:
        """This session's heartbeat (``beat()`` refreshes it now)."""
        return self._heartbeat

    # -- the run sink ----------------------------------------------------------------------

    # -- reading -----------------------------------------------------------------------------

    def _engine(self) -> DuckDBOverPostgres:
        with self._saved_lock:
            if self._duck is None:
                self._duck = DuckDBOverPostgres(
                    self.query_url, self._lookups.tables(), **self._mirror_options
                )
            return self._duck

    def relation_from_arrow(self, table: Any) -> Any:
        """A DuckDB relation over an Arrow table, on its own cursor."""
        import duckdb

        with self._saved_lock:
            if self._mem is None:
                self._mem = duckdb.connect(":memory:")
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
        """Run DuckDB SQL on the Postgres tables; a materialized DuckDB relation.

        The tables are attached read-only whatever ``read_only`` says (runs are written
        by the writer only); ``read_only=True`` adds the check and the time limit.
        """
        table = self.arrow(query, params, read_only=read_only, flush=flush, timeout=timeout)
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
        engine = self._engine()
        # this session's own commits are visible at once; others' within mirror_interval
        written = self._writer.rows_written
        engine.refresh(force=written != self._seen_written)
        self._seen_written = written
        # a read-only query opens its own READ ONLY transaction; any other runs in one too
        conn = engine.own_transaction() if read_only else engine
        # the query code only needs cursor() and error from its connection
        return duck_queries.run_query(
            cast(Connection, conn), query, params, read_only=read_only, timeout=timeout
        )

    def get_run(self, run_id: str) -> RunResult | None:
        """One run (after flushing), or None."""
        self.flush()
        return self._lookups.get_run(run_id)

    def cached_response(self, cache_key: str) -> dict[str, Any] | None:
        """The newest successful reply for ``cache_key`` (any session of the team)."""
        return self._lookups.cached_response(cache_key)

    def fetch_scoped(
        self, user_id: str | None, org_id: str | None, project_id: str | None
    ) -> dict[str, dict[str, str]]:
        """Read the three scoped-variable layers for the given owners."""
        self.flush()
        return self._lookups.fetch_scoped(user_id, org_id, project_id)

    def load_prompt(self, prompt_id: str, version: str | None = None) -> dict[str, Any] | None:
        """A stored prompt version (the newest when ``version`` is None), or None."""
        self.flush()
        return self._lookups.load_prompt(prompt_id, version)

    def prompt_ids(self) -> list[str]:
        """Ids of the prompts stored in the DB."""
        self.flush()
        return self._lookups.prompt_ids()

    def close(self) -> None:
        """Flush, stop the heartbeat, close every connection; idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        finally:
            _LIVE.pop(self.session_id, None)
            self._heartbeat.stop(self._admin)
            self._lookups.close()
            with contextlib.suppress(Exception):
                self._admin.close()
            for con in (self._duck, self._mem):
                if con is not None:
                    with contextlib.suppress(Exception):
                        con.close()
