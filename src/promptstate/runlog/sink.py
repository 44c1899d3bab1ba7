"""What every run log does the same way: rows stamped and queued on its writer.

The DuckDB log and the Postgres log differ in how they connect, migrate, commit and
read; the sink side (the engine's ``RunSink`` port) is this one class.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from promptstate.models.run import RunResult, to_row, utc
from promptstate.runlog.evalstore import EVAL_RUN_COLUMNS, SCORE_COLUMNS, columns_of
from promptstate.runlog.writer import SCOPE_TABLES, Writer

__all__ = ["SinkBase"]


class SinkBase:
    """The run sink: ``write_run``, prompts, scoped variables and the evaluation tables.

    Subclasses set ``session_id``, ``pid``, ``hostname`` and ``_writer`` before use.
    """

    session_id: str
    pid: int
    hostname: str
    _writer: Writer

    @property
    def flushes(self) -> int:
        """Batches committed so far."""
        return self._writer.flushes

    @property
    def rows_written(self) -> int:
        """Run rows committed so far."""
        return self._writer.rows_written

    @property
    def last_error(self) -> BaseException | None:
        """The last write error (also logged)."""
        return self._writer.last_error

    @property
    def pending(self) -> int:
        """Writes queued in memory, not yet committed."""
        return self._writer.pending

    def _init_sink(self) -> None:
        self._saved_prompts: dict[Any, concurrent.futures.Future[None]] = {}
        self._saved_lock = threading.Lock()

    def _stamp(self, row: dict[str, Any]) -> dict[str, Any]:
        row["session_id"] = row.get("session_id") or self.session_id
        row["pid"] = self.pid
        row["hostname"] = self.hostname
        return row

    def write_run(self, result: RunResult | Mapping[str, Any]) -> concurrent.futures.Future[None]:
        """Upsert a run row; resolves once committed."""
        row = to_row(result) if isinstance(result, RunResult) else dict(result)
        return self._writer.submit("run", row["run_id"], self._stamp(row))

    def write_running(
        self, run_id: str, build: Callable[[], RunResult]
    ) -> concurrent.futures.Future[None]:
        """A run's ``running`` row, deferred: built and written only if still due.

        It waits up to ``writer.DEFER_WINDOW`` for the run's next row, which replaces it
        unwritten; only a run still in flight then has ``build`` called (on the writer's
        thread) and its row committed. So a run that ends quickly never pays for a row
        nobody reads.
        """
        return self._writer.submit(
            "run", run_id, lambda: self._stamp(to_row(build())), deferred=True
        )

    def write_runs(self, results: Sequence[RunResult]) -> concurrent.futures.Future[None]:
        """Upsert many runs' rows as one write (a sweep's batch); resolves once committed.

        Neighbouring rows usually share their ``settings`` (and often more): each JSON
        column equal to the previous row's reuses its text instead of being dumped again.
        """
        rows: list[dict[str, Any]] = []
        prev: tuple[RunResult, dict[str, Any]] | None = None
        for r in results:
            row = to_row(r, prev)
            row["session_id"] = row["session_id"] or self.session_id
            row["pid"] = self.pid
            row["hostname"] = self.hostname
            rows.append(row)
            prev = (r, row)
        if not rows:
            done: concurrent.futures.Future[None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        return self._writer.submit("runs", rows[0]["run_id"], rows)

    def save_prompt(
        self, definition: Mapping[str, Any], source: str
    ) -> concurrent.futures.Future[None]:
        """Store a prompt version (first write of an (id, version) wins)."""
        key = (definition["id"], definition["version"])
        with self._saved_lock:
            saved = self._saved_prompts.get(key)
            if saved is not None and not (saved.done() and saved.exception() is not None):
                return saved  # once per session is enough
            fut = self._writer.submit("prompt", key, (dict(definition), source, utc(time.time())))
            self._saved_prompts[key] = fut
        return fut

    def set_scoped(
        self, scope: str, owner: str, name: str, value: str | None
    ) -> concurrent.futures.Future[None]:
        """Set (or delete, with None) a scoped variable."""
        if scope not in SCOPE_TABLES:
            raise ValueError(f"scope must be one of {sorted(SCOPE_TABLES)}")
        return self._writer.submit("scoped", (scope, owner, name), value)

    def flush(self, timeout: float | None = 120.0) -> None:
        """Block until everything submitted so far is committed (or failed)."""
        self._writer.flush(timeout)

    # -- evaluation tables (runlog/evalstore.py) ----------------------------------------------

    def write_scores(
        self, rows: Iterable[Mapping[str, Any]] | Mapping[str, list[Any]]
    ) -> concurrent.futures.Future[None]:
        """Queue ``scores`` rows (row dicts, or one list per column of
        ``evalstore.SCORE_COLUMNS``); one future for all of them."""
        batch = columns_of(rows, SCORE_COLUMNS)
        ids = batch.columns["score_id"]
        return self._writer.submit("scores", ids[0] if ids else "empty", batch)

    def save_dataset(
        self, meta: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]
    ) -> concurrent.futures.Future[None]:
        """Store a dataset version and its rows in one transaction (same rows: a no-op)."""
        data = (dict(meta), [dict(r) for r in rows])
        return self._writer.submit("dataset", (meta["dataset_id"], meta["version"]), data)

    def save_eval(self, row: Mapping[str, Any]) -> concurrent.futures.Future[None]:
        """Upsert an ``evals`` row."""
        return self._writer.submit("eval", row["eval_id"], dict(row))

    def write_eval_runs(self, rows: Iterable[Mapping[str, Any]]) -> concurrent.futures.Future[None]:
        """Queue ``eval_runs`` rows (an eval's cells and the runs they made)."""
        batch = columns_of(rows, EVAL_RUN_COLUMNS)
        cells = batch.columns["cell"]
        key = (batch.columns["eval_id"][0], cells[0]) if cells else "empty"
        return self._writer.submit("eval_runs", key, batch)
