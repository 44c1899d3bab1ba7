"""The one thread that writes the run log: a queue drained in group commits.

Callers get a future that resolves once their row is durable, so "reported done" always
means "on disk". Each batch is one transaction (a fixed ~2-4 ms of CPU here whatever its
size; a batch of one statement, a lone send's row, runs without BEGIN/COMMIT), so the
writer commits as soon as something is waiting and lets the ops that arrive meanwhile
form the next batch. Under load (the last batch held more than one op) it also holds a
batch open for up to :data:`GROUP_WINDOW` after its first op: fewer, larger commits when
many runs end at once, no added wait for a lone send.

A *deferred* op (a run's ``running`` row) triggers no commit of its own: it rides along
with the next batch once it is older than :data:`DEFER_WINDOW`, and is dropped unwritten
when a later op for the same key (the run's terminal row) reaches the writer first. So a
run that ends within the window costs one commit, not two, and a run still in flight
after the window (plus one commit) has its ``running`` row on disk, which crash recovery
turns into ``interrupted``.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptstate.errors import RunLogError
from promptstate.models.run import RUN_COLUMNS, column_sql, utc
from promptstate.runlog.connection import Connection
from promptstate.runlog.evalstore import EXTRA_KINDS, write_extra

__all__ = ["DEFER_WINDOW", "GROUP_WINDOW", "SCOPE_TABLES", "Writer"]

log = logging.getLogger("promptstate")

# How long a deferred op may wait for a later op that supersedes it (seconds).
DEFER_WINDOW = 0.05
# How long a batch stays open for more ops while the writer is under load (seconds), and
# the size at which it goes at once. 50 rather than 20 ms: at 50 concurrent inst.send()
# a commit gathers ~2.5x the rows, and the client's CPU per send falls by ~22% (1,621 ->
# 1,270 us here) for at most 30 ms more wait on a send that ends under load.
GROUP_WINDOW = 0.05
_GROUP_MAX = 512

SCOPE_TABLES = {"user": "user_variables", "org": "org_variables", "project": "project_variables"}
_OPEN_STATUSES = frozenset({"running", "queued"})
# One row: plain bound parameters.
_INSERT_ONE = (
    f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) VALUES ({', '.join('?' * len(RUN_COLUMNS))})"
)
_UPSERT_ONE = _INSERT_ONE.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1)
_UPDATE_ONE = (
    "UPDATE runs SET "
    + ", ".join(f"{c} = ?" for c in RUN_COLUMNS if c != "run_id")
    + " WHERE run_id = ?"
)
_UPDATE_COLUMNS = (*(c for c in RUN_COLUMNS if c != "run_id"), "run_id")
# A batch goes in as one list parameter per column, which DuckDB converts natively:
# less CPU in all than building an Arrow table of it (echo sweep: 124 vs 159 us per
# run), and no pyarrow in the writer: its first import, with the pandas that pa.array()
# pulls in, costs ~0.3 s (most of a short CLI run) and ~90 MB of RSS.
_LISTS = ", ".join(
    f"unnest(?::{'VARCHAR' if column_sql(c).startswith('JSON') else column_sql(c).split()[0]}[])"
    f" AS {c}"
    for c in RUN_COLUMNS
)
_INSERT_LISTS = f"INSERT INTO runs ({', '.join(RUN_COLUMNS)}) SELECT {_LISTS}"
_UPSERT_LISTS = _INSERT_LISTS.replace("INSERT INTO", "INSERT OR REPLACE INTO", 1)
_UPDATE_LISTS = (
    "UPDATE runs SET "
    + ", ".join(f"{c} = _ps_batch.{c}" for c in RUN_COLUMNS if c != "run_id")
    + f" FROM (SELECT {_LISTS}) AS _ps_batch WHERE runs.run_id = _ps_batch.run_id"
)
_SCOPE_SQL = {
    scope: (
        f"DELETE FROM {table} WHERE {scope}_id = ? AND name = ?",
        f"INSERT OR REPLACE INTO {table} ({scope}_id, name, value, updated_at) VALUES (?, ?, ?, ?)",
    )
    for scope, table in SCOPE_TABLES.items()
}


_Grouped = tuple[
    dict[str, dict[str, Any]], dict[Any, Any], dict[Any, Any], dict[str, dict[Any, Any]]
]


@dataclass
class _Op:
    kind: str  # "run" | "runs" (a list of rows) | "prompt" | "scoped" | one of EXTRA_KINDS
    key: Any
    data: Any
    future: concurrent.futures.Future[None]
    due: float | None = None  # deferred: written with the first batch after this time


class Writer:
    """Queue of writes and the thread that commits them."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection
        self._cv = threading.Condition()
        self._queue: list[_Op] = []
        # deferred ops by (kind, key), oldest first
        self._deferred: dict[tuple[str, Any], _Op] = {}
        self._flushing = 0
        # ids of runs whose non-terminal row is committed (in flight); writer thread only
        self._open_rows: set[str] = set()
        self._inflight = 0
        self._closed = False
        # when the queue last went from empty to not, and whether the last batch had
        # company (more than one op): then the next one is held open for GROUP_WINDOW
        self._queued_at = 0.0
        self._taken_at = 0.0  # when the writer last took a batch
        self._loaded = False
        self._thread: threading.Thread | None = None
        self.flushes = 0
        self.rows_written = 0
        self.last_error: BaseException | None = None

    def ensure_thread(self) -> None:
        """Start the writer thread (it also releases an idle shared connection)."""
        with self._cv:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="promptstate-runlog", daemon=True
                )
                self._thread.start()

    def submit(
        self, kind: str, key: Any, data: Any, *, deferred: bool = False
    ) -> concurrent.futures.Future[None]:
        """Queue one write; the future resolves once it is committed (or failed).

        ``deferred=True``: the write waits up to :data:`DEFER_WINDOW` for the next batch
        and is dropped (its future resolved) if a later write of the same ``kind`` and
        ``key`` reaches the writer first.
        """
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cv:
            if self._closed:
                raise RunLogError("run log is closed")
            if deferred:
                op = _Op(kind, key, data, fut, time.monotonic() + DEFER_WINDOW)
                older = self._deferred.pop((kind, key), None)
                if older is not None:  # the newer row replaces it
                    older.future.set_result(None)
                    op.due = older.due
                self._deferred[(kind, key)] = op
                if len(self._deferred) == 1:
                    self._cv.notify()  # the writer's wait now has a deadline
            else:
                queue = self._queue
                if not queue:
                    self._queued_at = time.monotonic()
                queue.append(_Op(kind, key, data, fut))
                # a writer holding a batch open wakes at the window's end or when full
                if len(queue) == 1 or len(queue) >= _GROUP_MAX or not self._loaded:
                    self._cv.notify()
        self.ensure_thread()
        return fut

    @property
    def pending(self) -> int:
        """Writes queued in memory, not yet committed."""
        with self._cv:
            return len(self._queue) + len(self._deferred) + self._inflight

    def flush(self, timeout: float | None = 120.0) -> None:
        """Block until everything submitted so far is committed (or failed)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            self._flushing += 1
            self._cv.notify()  # deferred writes and a batch held open go now
            try:
                while self._queue or self._deferred or self._inflight:
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise RunLogError("timed out waiting for the run log to flush")
                    self._cv.wait(remaining)
            finally:
                self._flushing -= 1

    def close(self) -> None:
        """Flush, then stop the thread."""
        try:
            self.flush(timeout=120)
        finally:
            with self._cv:
                self._closed = True
                self._cv.notify_all()
            if self._thread is not None:
                self._thread.join(timeout=10)

    def _take(self) -> tuple[list[_Op], list[_Op]] | None:
        """Wait for a batch (under the lock): the ops to write and the ones superseded."""
        conn = self._conn
        while True:
            if self._queue:
                wait = self._hold(time.monotonic())
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                break
            if self._deferred:
                if self._closed or self._flushing:
                    break
                wait = (next(iter(self._deferred.values())).due or 0.0) - time.monotonic()
                if wait <= 0:
                    break
                self._cv.wait(wait)
                continue
            if self._closed:
                return None
            self._cv.wait(timeout=conn.hold_idle / 2 if conn.shared else None)
            if conn.shared:
                conn.release()  # idle (it checks): let other processes have the file
        batch, self._queue = self._queue, []
        dropped: list[_Op] = []
        if self._deferred:
            now = time.monotonic()
            everything = self._closed or self._flushing > 0
            newer = {(op.kind, op.key) for op in batch}
            newer.update(
                ("run", row["run_id"]) for op in batch if op.kind == "runs" for row in op.data
            )
            keep: dict[tuple[str, Any], _Op] = {}
            due: list[_Op] = []
            for k, op in self._deferred.items():
                if k in newer:
                    dropped.append(op)  # its later row is in this batch
                elif everything or (op.due or 0.0) <= now:
                    due.append(op)
                else:
                    keep[k] = op
            self._deferred = keep
            batch[:0] = due  # older than the batch's own ops: those win per key
        self._inflight = len(batch) + len(dropped)
        self._loaded = len(batch) > 1
        self._taken_at = time.monotonic()
        return batch, dropped

    def _hold(self, now: float) -> float:
        """Seconds to hold the queued batch open for more ops (<= 0: write it now).

        Only under load: the last batch had company and this one's first op came while
        that one was being written or soon after. An op after an idle gap (a lone send
        after a sweep) goes at once, and so does everything on close, flush or a full batch.
        """
        if not self._loaded or self._closed or self._flushing or len(self._queue) >= _GROUP_MAX:
            return 0.0
        if self._queued_at - self._taken_at >= GROUP_WINDOW:
            return 0.0
        return self._queued_at + GROUP_WINDOW - now

    def _run(self) -> None:
        conn = self._conn
        while True:
            with self._cv:
                taken = self._take()
                if taken is None:
                    return
                batch, dropped = taken
            err = self._write_batch(batch) if batch else None
            for op in (*batch, *dropped):
                if err is None:
                    op.future.set_result(None)
                else:
                    op.future.set_exception(err)
            with self._cv:
                self._inflight = 0
                self._cv.notify_all()
            if conn.shared and conn.release() and conn.contended:
                # another process waited for the file last time: give it a turn
                time.sleep(0.02 + random.random() * 0.02)

    @staticmethod
    def _group(batch: list[_Op]) -> _Grouped:
        """The batch's writes by table; later ops for the same key win (one row per run)."""
        runs: dict[str, dict[str, Any]] = {}
        prompts: dict[Any, Any] = {}
        scoped: dict[Any, Any] = {}
        extra: dict[str, dict[Any, Any]] = {}  # evaluation tables (runlog/evalstore.py)
        for op in batch:
            if op.kind == "runs":  # many runs' rows, one op (a sweep's batch)
                for row in op.data:
                    runs[row["run_id"]] = row
            elif op.kind in EXTRA_KINDS:
                extra.setdefault(op.kind, {})[op.key] = op.data
            elif op.kind == "run" and callable(op.data):  # a deferred row, built now
                try:
                    runs[op.key] = op.data()
                except Exception:  # a bug, never the data: the run's later row still goes
                    log.exception("promptstate: building the running row of %s", op.key)
            else:
                {"run": runs, "prompt": prompts, "scoped": scoped}[op.kind][op.key] = op.data
        return runs, prompts, scoped, extra

    def _write_batch(self, batch: list[_Op]) -> BaseException | None:
        runs, prompts, scoped, extra = self._group(batch)
        delay = 0.02
        for attempt in range(8):
            try:
                with self._conn.cursor() as cur:
                    try:
                        # a retry upserts: safe whatever rows a failed attempt assumed
                        self._commit(cur, runs, prompts, scoped, upsert=attempt > 0, extra=extra)
                    except self._conn.error:
                        try:
                            cur.execute("ROLLBACK")
                        except self._conn.error:
                            log.debug("promptstate: rollback after a failed batch failed")
                        raise
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
                log.error("promptstate: run log write failed: %s", exc)
                return exc
            except self._conn.error as exc:
                self.last_error = exc
                if attempt == 7:
                    log.error("promptstate: run log write failed after retries: %s", exc)
                    return RunLogError(
                        f"could not write {len(batch)} item(s) to the run log: {exc}"
                    )
                log.warning("promptstate: run log write failed (retrying): %s", exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
        return None  # pragma: no cover

    def _commit(
        self,
        con: Any,
        runs: Mapping[str, Mapping[str, Any]],
        prompts: Mapping[Any, Any],
        scoped: Mapping[Any, Any],
        upsert: bool = False,
        extra: Mapping[str, Mapping[Any, Any]] | None = None,
    ) -> None:
        # A run's first committed row is a plain INSERT, its later rows (the terminal row
        # after a committed 'running' one) an UPDATE: INSERT OR REPLACE costs ~6 ms per
        # batch here against ~3 ms for either, whatever the batch size.
        fresh = [r for rid, r in runs.items() if upsert or rid not in self._open_rows]
        known = [r for rid, r in runs.items() if not upsert and rid in self._open_rows]
        statements: list[tuple[str, list[Any]]] = []
        if len(fresh) == 1:
            statements.append(
                (_UPSERT_ONE if upsert else _INSERT_ONE, [fresh[0][c] for c in RUN_COLUMNS])
            )
        elif fresh:
            statements.append((_UPSERT_LISTS if upsert else _INSERT_LISTS, _lists(fresh)))
        if len(known) == 1:
            statements.append((_UPDATE_ONE, [known[0][c] for c in _UPDATE_COLUMNS]))
        elif known:
            statements.append((_UPDATE_LISTS, _lists(known)))
        for (pid, version), (definition, source, at) in prompts.items():
            statements.append(
                (
                    "INSERT OR IGNORE INTO prompts VALUES (?, ?, ?, ?, ?)",
                    [pid, version, json.dumps(definition, ensure_ascii=False), source, at],
                )
            )
        for (scope, owner, name), value in scoped.items():
            delete, upsert_sql = _SCOPE_SQL[scope]
            if value is None:
                statements.append((delete, [owner, name]))
            else:
                statements.append((upsert_sql, [owner, name, value, utc(time.time())]))
        if len(statements) == 1 and not extra:
            # one statement is a transaction of its own; BEGIN and COMMIT are two more
            # statements, ~1.3 of the ~6 ms a lone send's row costs here
            con.execute(*statements[0])
            return
        con.execute("BEGIN")
        for sql, params in statements:
            con.execute(sql, params)
        if extra:
            write_extra(con, extra)
        con.execute("COMMIT")


def _lists(rows: list[Mapping[str, Any]]) -> list[list[Any]]:
    """The parameters of the ``unnest`` statements: one list per column."""
    return [[r[c] for r in rows] for c in RUN_COLUMNS]
