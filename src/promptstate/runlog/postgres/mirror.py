"""A local DuckDB mirror of the team's finished runs, so history queries stay local.

DuckDB's postgres scanner pushes simple filters down but not a top-N or a whole-table
aggregate: RunHistory's ``ORDER BY started_at DESC LIMIT 100`` over 1M team runs read
every row over the wire. Finished runs never change (status is final once a run ends),
so each query session keeps them in an in-memory DuckDB table and only fetches what is
new:

- cold: one bulk copy of every finished row through the attach (binary ``COPY``, in
  parallel: far faster than row-by-row fetching);
- then, before each query (at most once per ``min_interval`` seconds, and always after
  this session committed runs, so its own runs are visible at once): ONE psycopg query,
  in one snapshot, for the ``running`` rows (partial index) and the finished rows with
  ``finished_at`` newer than the last seen one minus ``overlap`` (index on
  ``finished_at``), upserted on ``run_id`` (delete then insert, one transaction); rows
  of the overlap window that did not change are skipped.

The ``running`` rows of that snapshot replace the previous refresh's in the same table
(one table, not a UNION view: a union hides it from DuckDB's top-N), so a run that
ended turns from running to finished in one DuckDB transaction. A writer whose clock
runs ahead cannot push the watermark past the server's clock; the overlap window covers
writers whose commits land late or whose clocks lag (a row that commits with a
``finished_at`` older than the watermark minus ``overlap`` is only seen by a new
session). Rows deleted in Postgres stay in the mirror until the session ends.

In memory rather than a cache file: no stale file to invalidate, no team data left on
disk, no lock between two sessions of one user; the price is one cold copy per session
and memory for the finished rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from typing import Any

from promptstate.errors import RunLogError
from promptstate.runlog.postgres.connection import connect, display_url, psycopg_module

__all__ = ["DEFAULT_OVERLAP", "MIRROR_SCHEMA", "MIRROR_TABLE", "RunsMirror"]

MIRROR_SCHEMA = "ps_mirror"
MIRROR_TABLE = f"{MIRROR_SCHEMA}.runs"
# seconds of finished_at re-read on every refresh (late commits, clock skew)
DEFAULT_OVERLAP = 60.0
_EPOCH = dt.datetime(1970, 1, 1)


def _arrow_type(duck_type: str) -> Any:
    import pyarrow as pa

    return {
        "VARCHAR": pa.string(),
        "BIGINT": pa.int64(),
        "INTEGER": pa.int32(),
        "SMALLINT": pa.int16(),
        "DOUBLE": pa.float64(),
        "TIMESTAMP": pa.timestamp("us"),
        "BOOLEAN": pa.bool_(),
    }.get(duck_type)


class RunsMirror:
    """The runs of a Postgres run log in a table of DuckDB connection ``con``.

    Finished runs are copied once and kept; the running ones are replaced by each
    refresh's.

    Parameters
    ----------
    con : duckdb.DuckDBPyConnection
        The query connection, with the database attached as ``pg``; the mirror is its
        table ``ps_mirror.runs``.
    url : str
        The role the refresh query connects as (the query role: SELECT is enough).
    min_interval : float
        Least seconds between two refreshes (``refresh(force=True)`` ignores it).
    overlap : float
        Seconds of ``finished_at`` re-read on each refresh.
    """

    def __init__(
        self, con: Any, url: str, *, min_interval: float = 1.0, overlap: float = DEFAULT_OVERLAP
    ) -> None:
        self.url = url
        self.min_interval = min_interval
        self.overlap = dt.timedelta(seconds=overlap)
        self.refreshes = 0
        self.rows_fetched = 0
        self._con = con
        self._lock = threading.Lock()
        self._pg: Any = None
        self._last = -float("inf")
        self._watermark: dt.datetime | None = None
        # the rows of the last refresh: running ones, finished ones inside the overlap
        self._running: list[tuple[Any, ...]] = []
        self._recent: dict[str, tuple[Any, ...]] = {}
        desc = con.execute("DESCRIBE SELECT * FROM pg.public.runs").fetchall()
        self.columns = [(str(r[0]), str(r[1])) for r in desc]
        cols = ", ".join(f'"{c}" {t}' for c, t in self.columns)
        con.execute(f"CREATE SCHEMA {MIRROR_SCHEMA}")
        # no PRIMARY KEY: maintaining its index made the cold copy of 1M rows ~6 s slower;
        # upserts delete by run_id then insert, in one transaction
        con.execute(f"CREATE TABLE {MIRROR_TABLE} ({cols})")
        # text for every VARCHAR column: JSONB arrives as the same text the attach reads
        select = ", ".join(f'"{c}"::text' if t == "VARCHAR" else f'"{c}"' for c, t in self.columns)
        self._fetch_sql = (
            f"SELECT {select} FROM runs WHERE status = 'running' UNION ALL "
            f"SELECT {select} FROM runs WHERE finished_at > %s AND status <> 'running'"
        )

    def view_sql(self) -> str:
        """The ``runs`` view: the mirror, finished and running rows in one table."""
        # one table, not finished UNION ALL running: the union hides the table from
        # DuckDB's top-N (RunHistory's first page: ~50 ms instead of ~5 over 1M rows)
        return f"SELECT * FROM {MIRROR_TABLE}"

    def refresh(self, *, force: bool = False) -> bool:
        """Bring the mirror up to date unless refreshed < ``min_interval`` s ago.

        Returns True when it queried Postgres. Raises :class:`RunLogError` when Postgres
        cannot be read (the mirror keeps what it had).
        """
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < self.min_interval:
                return False
            if self._watermark is None:
                self._cold_load()
            self._incremental()
            self._last = time.monotonic()
            self.refreshes += 1
            return True

    def _cold_load(self) -> None:
        con = self._con
        try:
            con.execute(
                f"INSERT INTO {MIRROR_TABLE} SELECT * FROM pg.public.runs WHERE status <> 'running'"
            )
            top = con.execute(f"SELECT max(finished_at) FROM {MIRROR_TABLE}").fetchall()
        except Exception as exc:
            with contextlib.suppress(Exception):
                con.execute(f"DELETE FROM {MIRROR_TABLE}")
            raise RunLogError(f"cannot copy the team's runs: {display_url(str(exc))}") from None
        self._watermark = top[0][0] or _EPOCH

    def _pg_connection(self) -> Any:
        if self._pg is None or self._pg.closed:
            # autocommit: one round trip a refresh; every statement's transaction is
            # read-only all the same
            self._pg = connect(self.url, timeout=10.0, autocommit=True)
            self._pg.execute("SET default_transaction_read_only = on")
        return self._pg

    def _fetch(self, since: dt.datetime) -> tuple[dt.datetime, list[tuple[Any, ...]]]:
        """The server's clock (UTC) and the rows to apply, in one round trip."""
        psycopg = psycopg_module()
        try:
            pg = self._pg_connection()
            with pg.pipeline():
                clock = pg.execute("SELECT now() AT TIME ZONE 'UTC'")
                rows = pg.execute(self._fetch_sql, [since])
            now = clock.fetchone()
            assert now is not None
            return now[0], list(rows.fetchall())
        except psycopg.Error as exc:
            if self._pg is not None:
                with contextlib.suppress(Exception):
                    self._pg.close()
            self._pg = None  # the next refresh reconnects
            raise RunLogError(f"run log {display_url(self.url)} unreachable: {exc}") from None

    def _incremental(self) -> None:
        import pyarrow as pa

        assert self._watermark is not None
        since = self._watermark - self.overlap
        server_now, rows = self._fetch(since)
        self.rows_fetched += len(rows)
        names = [c for c, _ in self.columns]
        rid, status, fin = names.index("run_id"), names.index("status"), names.index("finished_at")
        running = [r for r in rows if r[status] == "running"]
        # the overlap window comes back on every refresh: apply only rows that changed
        finished = [r for r in rows if r[status] != "running" and self._recent.get(r[rid]) != r]
        if not finished and running == self._running:
            return
        # replaced: this refresh's running rows, the last one's (now finished or gone),
        # and the finished rows that changed
        ids = sorted({r[rid] for r in (*self._running, *running, *finished)})
        batch = running + finished
        cur = self._con.cursor()
        try:
            cur.execute("BEGIN TRANSACTION")
            cur.execute(
                f"DELETE FROM {MIRROR_TABLE} WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
            )
            if batch:
                arrays = {
                    c: pa.array([r[i] for r in batch], type=_arrow_type(t))
                    for i, (c, t) in enumerate(self.columns)
                }
                cur.register("ps_mirror_batch", pa.table(arrays))
                cur.execute(f"INSERT INTO {MIRROR_TABLE} SELECT * FROM ps_mirror_batch")
                cur.unregister("ps_mirror_batch")
            cur.execute("COMMIT")
        except Exception:
            with contextlib.suppress(Exception):
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
        self._running = running
        # a writer whose clock runs ahead must not push the watermark past the server's
        # clock (the others' runs would then fall behind the overlap window)
        ends = [r[fin] for r in finished if r[fin] is not None and r[fin] <= server_now]
        self._watermark = max([min(self._watermark, server_now), *ends])
        floor = self._watermark - self.overlap
        self._recent = {
            k: v for k, v in self._recent.items() if v[fin] is not None and v[fin] > floor
        }
        self._recent.update((r[rid], r) for r in finished)

    def close(self) -> None:
        """Close the refresh connection."""
        with self._lock:
            if self._pg is not None:
                with contextlib.suppress(Exception):
                    self._pg.close()
                self._pg = None
