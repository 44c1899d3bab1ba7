"""``session.runs``: SQL over the run log, and runs read back (get, diff, restore, re-run)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from promptstate.engine.history import RunDiff, diff_runs, get_run, restore_run
from promptstate.engine.ports import Runtime
from promptstate.errors import ReadOnlyQueryError
from promptstate.models.run import RunResult
from promptstate.runlog import AnyRunLog

if TYPE_CHECKING:
    from promptstate.session.instance import Instance

__all__ = ["Runs"]


class Runs:
    """SQL access to the run log (``session.runs``)."""

    def __init__(
        self,
        runlog: AnyRunLog,
        runtime: Runtime,
        instance: Callable[[str], Instance],
    ) -> None:
        self._runlog = runlog
        self._rt = runtime
        self._instance = instance
        self._page_cache: tuple[tuple[str, bool, int], float, Any] | None = None

    def sql(
        self,
        query: str,
        params: Iterable[Any] | None = None,
        *,
        read_only: bool = False,
        timeout: float | None = None,
    ) -> Any:
        """Run DuckDB SQL on the run log and return a relation (``.df()``, ``.pl()``,
        ``.arrow()``, ``.fetchall()``...).

        Pending writes are flushed first, so every finished run is visible.
        ``read_only=True`` (the run-history widget's and CLI's path) runs the query in a
        read-only transaction, interrupted after ``timeout`` seconds (default 30), and
        raises :class:`~promptstate.ReadOnlyQueryError` for anything that would write.
        The log's DuckDB connections never read files or load extensions.
        """
        return self._runlog.sql(query, params, read_only=read_only, timeout=timeout)

    def page(
        self, query: str, offset: int = 0, limit: int = 100, *, read_only: bool = True
    ) -> tuple[list[str], list[tuple[Any, ...]], int]:
        """One page of a query's result: ``(columns, rows, total_rows)``.

        Only the page's rows are converted to Python, so a 100k-row result stays cheap
        to browse. Blocks: call it off the event loop.
        """
        if isinstance(offset, bool) or not isinstance(offset, int):
            raise ReadOnlyQueryError(f"offset must be an integer, not {offset!r}")
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise ReadOnlyQueryError(f"limit must be an integer, not {limit!r}")
        # paging through one result re-uses its materialization while nothing was written
        # (by this session; other processes' writes show within a couple of seconds)
        key = (query, read_only, self._runlog.flushes)
        cached = self._page_cache
        if cached is not None and cached[0] == key and time.monotonic() - cached[1] < 2.0:
            table = cached[2]
        else:
            table = self._runlog.arrow(query, read_only=read_only)
            if table is None:
                return [], [], 0
            self._page_cache = (key, time.monotonic(), table)
        page = table.slice(max(0, offset), max(0, limit))
        rows = list(zip(*(col.to_pylist() for col in page.columns), strict=True))
        return list(table.column_names), rows, int(table.num_rows)

    def count(self) -> int:
        """Number of rows in ``runs``."""
        return int(self.sql("SELECT count(*) FROM runs").fetchall()[0][0])

    def flush(self) -> None:
        """Block until every run written so far is committed."""
        self._runlog.flush()

    def get(self, run_id: str) -> RunResult:
        """One run as a :class:`RunResult` (raises :class:`UnknownRunError`)."""
        return get_run(self._rt, run_id)

    def diff(self, a: str, b: str) -> RunDiff:
        """Compare two runs: fields, variables, rendered prompt and response."""
        return diff_runs(get_run(self._rt, a), get_run(self._rt, b))

    async def rerun(self, run_id: str, model: str | None = None) -> RunResult:
        """Send that run's exact request again (optionally to another model)."""
        iid, content = restore_run(self._rt, get_run(self._rt, run_id))
        inst = self._instance(iid)
        try:
            return await inst.send(content, model=model)
        finally:
            inst.close()  # the run log keeps the run; the store does not grow per re-run

    def restore(self, run_id: str, into: Instance | None = None) -> Instance:
        """The instance state (variables, sent conversation) that produced ``run_id``."""
        iid, _content = restore_run(
            self._rt, get_run(self._rt, run_id), None if into is None else into.id
        )
        return self._instance(iid)
