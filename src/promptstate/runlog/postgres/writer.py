"""The Postgres commit behind the shared writer queue.

:class:`PgWriter` reuses :class:`~promptstate.runlog.writer.Writer` whole (the queue,
the futures, the one thread, the group commits, ``flush``/``close``) and replaces only
how a batch is committed: one Postgres transaction of ``INSERT ... ON CONFLICT``
statements. An upsert is idempotent, so a batch whose commit was cut off (server gone)
is simply sent again after reconnecting: no loss, no duplicates. While the server is
away the batch is retried with backoff for up to ``retry_for`` seconds (new writes queue
in memory meanwhile); after that its futures fail with :class:`RunLogError`.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from typing import Any, cast

from promptstate.errors import RunLogError
from promptstate.models.run import RUN_COLUMNS, column_sql, utc
from promptstate.runlog.connection import Connection
from promptstate.runlog.evalstore import EXTRA_KINDS
from promptstate.runlog.postgres.connection import (
    connect,
    display_url,
    psycopg_module,
    transient_errors,
)
from promptstate.runlog.postgres.evalstore import write_extra_pg
from promptstate.runlog.writer import SCOPE_TABLES, Writer, _Op

__all__ = ["UPSERT_RUN", "PgWriter"]

log = logging.getLogger("promptstate")


def _placeholder(column: str) -> str:
    return "%s::jsonb" if column_sql(column) == "JSON" else "%s"


UPSERT_RUN = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) "
    f"VALUES ({', '.join(_placeholder(c) for c in RUN_COLUMNS)}) "
    "ON CONFLICT (run_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in RUN_COLUMNS if c != "run_id")
)
_INSERT_PROMPT = (
    "INSERT INTO prompts (prompt_id, version, definition, source, created_at) "
    "VALUES (%s, %s, %s::jsonb, %s, %s) ON CONFLICT DO NOTHING"
)
_SCOPE_SQL = {
    scope: (
        f"DELETE FROM {table} WHERE {scope}_id = %s AND name = %s",
        f"INSERT INTO {table} ({scope}_id, name, value, updated_at) VALUES (%s, %s, %s, %s) "
        f"ON CONFLICT ({scope}_id, name) DO UPDATE SET value = EXCLUDED.value, "
        "updated_at = EXCLUDED.updated_at",
    )
    for scope, table in SCOPE_TABLES.items()
}
KINDS = frozenset({"run", "runs", "prompt", "scoped", *EXTRA_KINDS})


class _NotAFile:
    """What the base writer loop asks of its connection: nothing to share or release."""

    shared = False
    hold_idle = 1.0
    contended = False

    def release(self, force: bool = False) -> bool:
        return False


class PgWriter(Writer):
    """The writer thread, committing each batch in one Postgres transaction."""

    def __init__(self, url: str, *, retry_for: float = 300.0) -> None:
        # the base loop only reads shared/hold_idle and calls release()
        super().__init__(cast(Connection, _NotAFile()))
        self.url = url
        self.retry_for = retry_for
        self.reconnects = 0
        self._pg: Any = None
        self._pg_lock = threading.Lock()

    def _connection(self) -> Any:
        if self._pg is None or self._pg.closed:
            self._pg = connect(self.url, timeout=5.0)
            self.reconnects += 1
        return self._pg

    def _drop_connection(self) -> None:
        if self._pg is not None:
            try:
                self._pg.close()
            except Exception:
                log.debug("promptstate: closing a broken Postgres connection failed")
            self._pg = None

    def close(self) -> None:
        """Flush, stop the thread, close the connection."""
        try:
            super().close()
        finally:
            self._drop_connection()

    def _write_batch(self, batch: list[_Op]) -> BaseException | None:
        unknown = [op for op in batch if op.kind not in KINDS]
        for op in unknown:  # fail loudly, keep the rest of the batch
            op.future.set_exception(
                RunLogError(f"the Postgres run log cannot write {op.kind!r} items yet")
            )
        batch[:] = [op for op in batch if op.kind in KINDS]
        runs, prompts, scoped, extra = self._group(batch)
        if not batch:
            return None
        psycopg = psycopg_module()
        transient = transient_errors()
        deadline = time.monotonic() + self.retry_for
        delay = 0.05
        while True:
            try:
                con = self._connection()
                with con.transaction(), con.cursor() as cur:
                    self._commit_pg(cur, runs, prompts, scoped, extra)
                self.flushes += 1
                self.rows_written += len(runs)
                return None
            except (RunLogError, *transient) as exc:  # type: ignore[misc]
                # unreachable or cut off mid-commit: reconnect and send the batch again
                self._drop_connection()
                self.last_error = exc
                if time.monotonic() + delay >= deadline:
                    log.error("promptstate: Postgres run log unreachable, giving up: %s", exc)
                    return RunLogError(
                        f"could not write {len(batch)} item(s) to {display_url(self.url)} "
                        f"within {self.retry_for:g}s: {exc}"
                    )
                log.warning("promptstate: Postgres run log write failed (retrying): %s", exc)
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
            except psycopg.Error as exc:  # bad data or schema: retrying will not help
                self.last_error = exc
                log.error("promptstate: Postgres run log write failed: %s", exc)
                return RunLogError(f"could not write {len(batch)} item(s) to the run log: {exc}")

    def _commit_pg(
        self,
        cur: Any,
        runs: dict[str, dict[str, Any]],
        prompts: dict[Any, Any],
        scoped: dict[Any, Any],
        extra: dict[str, dict[Any, Any]],
    ) -> None:
        if runs:
            cur.executemany(UPSERT_RUN, [[r[c] for c in RUN_COLUMNS] for r in runs.values()])
        if prompts:
            cur.executemany(
                _INSERT_PROMPT,
                [
                    [pid, version, json.dumps(definition, ensure_ascii=False), source, at]
                    for (pid, version), (definition, source, at) in prompts.items()
                ],
            )
        for (scope, owner, name), value in scoped.items():
            delete, upsert = _SCOPE_SQL[scope]
            if value is None:
                cur.execute(delete, [owner, name])
            else:
                cur.execute(upsert, [owner, name, value, utc(time.time())])
        if extra:
            write_extra_pg(cur, extra)
