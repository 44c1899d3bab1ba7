"""``RunHistory(session)``: query the run log in SQL, inspect, compare and re-run runs."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import traitlets

from promptstate.models.run import RunResult
from promptstate.widgets._assets import module
from promptstate.widgets._panel import (
    PanelWidget,
    describe,
    json_safe,
    run_detail_payload,
    run_diff_payload,
)
from promptstate.widgets._panel_messages import RerunDone, opt_int, opt_str, req_int, req_str

if TYPE_CHECKING:
    from promptstate.session.session import Session

__all__ = ["DEFAULT_QUERY", "RunHistory"]

DEFAULT_QUERY = (
    "SELECT run_id, prompt_id, model, status, latency_ms, output_tokens, started_at\n"
    "FROM runs ORDER BY started_at DESC"
)
# A table cell shows at most this much text; the detail pane shows the run in full.
_CELL_LIMIT = 300
_MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class _Page:
    query: str
    columns: list[str]
    rows: list[list[Any]]
    total: int
    offset: int
    limit: int


class RunHistory(PanelWidget):
    """The run log as a paged, queryable table with run details, diffs and re-runs.

    The SQL box runs on the run log's read-only path: a statement that writes,
    ATTACH, COPY, INSTALL/LOAD or a file read is refused, and any failing query shows
    DuckDB's message here (the table keeps the last good result). Only the visible
    page travels to the browser. Click a row (the query needs a ``run_id`` column) for
    the full run; tick two rows for a side-by-side diff; **Re-run** sends that run's
    prompt version and variables again (optionally on another model) without
    blocking the kernel, then refreshes the table. A small chart plots
    ``latency_ms`` and ``output_tokens`` over the runs shown.

    Parameters
    ----------
    session : promptstate.Session
        The session whose run log to query.
    query : str, optional
        The first query (default: the latest runs, newest first).
    page_size : int
        Rows per page.

    Examples
    --------
    >>> history = ps.widgets.RunHistory(session)  # doctest: +SKIP
    >>> history.run_query("SELECT model, count(*) FROM runs GROUP BY ALL")  # doctest: +SKIP
    """

    _esm = module("history.js")

    query = traitlets.Unicode(DEFAULT_QUERY).tag(sync=True)
    columns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    rows = traitlets.List(traitlets.List()).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    offset = traitlets.Int(0).tag(sync=True)
    page_size = traitlets.Int(50).tag(sync=True)
    loading = traitlets.Bool(False).tag(sync=True)
    detail = traitlets.Dict().tag(sync=True)
    compare_ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    diff = traitlets.Dict().tag(sync=True)
    reruns = traitlets.List(traitlets.Unicode()).tag(sync=True)
    # A failed re-run's error, shown beside the Re-run button (not in the top banner).
    rerun_error = traitlets.Unicode("").tag(sync=True)
    highlight = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self, session: Session, query: str | None = None, *, page_size: int = 50, **kwargs: Any
    ) -> None:
        if not hasattr(session, "runs") or not hasattr(session, "store"):
            raise TypeError(f"RunHistory() takes a ps.Session, not {type(session).__name__}")
        size = max(1, min(_MAX_PAGE_SIZE, int(page_size)))
        text = query or DEFAULT_QUERY
        self._session = session  # the first page goes out with the comm_open
        page = self._fetch(text, 0, size)
        if isinstance(page, str):
            initial: dict[str, Any] = {"error": page}
        else:
            initial = {"columns": page.columns, "rows": page.rows, "total": page.total}
        super().__init__(session, query=text, page_size=size, **initial, **kwargs)

    # -- Python API ------------------------------------------------------------------------------

    def run_query(self, query: str | None = None, offset: int = 0) -> None:
        """Run ``query`` (default: the current one) and show the page at ``offset``.

        A failing or refused query is shown in ``error``; it does not raise.
        """
        text = self.query if query is None else query
        self._set_error("")
        self._apply_page(self._fetch(text, offset), text)

    def show_run(self, run_id: str | None) -> None:
        """Show one run in the detail pane (``None`` closes it); errors go to ``error``."""
        self._set_error("")
        self.read_soon(lambda: self._fetch_detail(run_id), self._apply_detail)

    def compare(self, a: str, b: str) -> None:
        """Show the side-by-side diff of two runs."""
        self.apply({"compare_ids": [a, b]})
        self.read_soon(lambda: self._fetch_diff([a, b]), self._apply_diff)

    def rerun(self, run_id: str, model: str | None = None) -> concurrent.futures.Future[RunResult]:
        """Re-run ``run_id`` on the session's loop (optionally on ``model``); never blocks.

        When the new run finishes the table is refreshed and the new run is shown.
        """
        model = (model or "").strip() or None
        if model is not None:
            self._session.providers.resolve(model)  # an unknown provider fails here, now
        fut = self.spawn(self._session.runs.rerun(run_id, model))
        label = f" on {model}" if model else ""
        self.call_on_loop(
            lambda: self.apply(
                {
                    "reruns": [*self.reruns, run_id],
                    "notice": f"re-running {run_id}{label}…",
                    "rerun_error": "",
                }
            )
        )
        fut.add_done_callback(lambda f: self._rerun_finished(run_id, f))
        return fut

    # -- work --------------------------------------------------------------------------------------

    def _fetch(self, query: str, offset: int, limit: int | None = None) -> _Page | str:
        """One page of ``query``, or the error text."""
        size = self.page_size if limit is None else max(1, min(_MAX_PAGE_SIZE, limit))
        offset = max(0, offset)
        runs = self._session.runs
        try:
            columns, rows, total = runs.page(query, offset, size)
            if offset and offset >= total:  # past the end (rows were removed): last page
                offset = max(0, (total - 1) // size * size)
                columns, rows, total = runs.page(query, offset, size)
        except Exception as exc:  # ReadOnlyQueryError, RunLogError (DuckDB's message)
            return describe(exc)
        cells = [[json_safe(v, _CELL_LIMIT) for v in row] for row in rows]
        return _Page(query, [str(c) for c in columns], cells, total, offset, size)

    def _apply_page(self, page: _Page | str, query: str | None = None) -> None:
        if isinstance(page, str):
            values: dict[str, Any] = {"loading": False, "error": page}
            if query is not None:
                values["query"] = query  # the box keeps what was typed
            self.apply(values)
            return
        self.apply(
            {
                "query": page.query,
                "columns": page.columns,
                "rows": page.rows,
                "total": page.total,
                "offset": page.offset,
                "page_size": page.limit,
                "loading": False,
            }
        )

    def _load_page(self, query: str, offset: int, limit: int | None = None) -> None:
        self.call_on_loop(lambda: self.apply({"loading": True}))
        self.read_soon(
            lambda: self._fetch(query, offset, limit), lambda p: self._apply_page(p, query)
        )

    def _fetch_detail(self, run_id: str | None) -> dict[str, Any]:
        if run_id is None:
            return {}
        return dict(run_detail_payload(self._session.runs.get(run_id)))

    def _apply_detail(self, detail: dict[str, Any]) -> None:
        values: dict[str, Any] = {"detail": detail}
        if detail.get("run_id") != self.detail.get("run_id"):
            values["rerun_error"] = ""  # it was about the run shown before
        self.apply(values)

    def _fetch_diff(self, ids: list[str]) -> dict[str, Any]:
        if len(ids) != 2:
            return {}
        return dict(run_diff_payload(self._session.runs.diff(ids[0], ids[1])))

    def _apply_diff(self, diff: dict[str, Any]) -> None:
        self.apply({"diff": diff})

    def _rerun_finished(self, run_id: str, fut: concurrent.futures.Future[RunResult]) -> None:
        result: RunResult | None = None
        exc: BaseException | None = None
        if fut.cancelled():
            exc = asyncio.CancelledError("the re-run task was cancelled")
        else:
            exc = fut.exception()
            if exc is None:
                result = fut.result()
        reply = RerunDone(
            type="rerun_done",
            run_id=run_id,
            new_run_id=None if result is None else result.run_id,
            ok=exc is None,
            status="error" if result is None else result.status,
            error=describe(exc) if exc is not None else (result.error if result else None),
        )

        def apply() -> None:
            pending = list(self.reruns)
            if run_id in pending:
                pending.remove(run_id)
            values: dict[str, Any] = {"reruns": pending}
            if result is None:
                values["rerun_error"] = f"re-run of {run_id} failed: {reply['error']}"
                values["notice"] = ""
            else:
                values["notice"] = f"re-ran {run_id} as {result.run_id}: {result.status}"
                values["highlight"] = result.run_id
            self.apply(values)
            self.send(dict(reply))
            self._load_page(self.query, self.offset)
            if result is not None:
                new_id = result.run_id
                self.read_soon(lambda: self._fetch_detail(new_id), self._apply_detail)

        self.call_on_loop(apply)

    # -- front end -> kernel -------------------------------------------------------------------

    def _handlers(self) -> Mapping[str, Callable[[Mapping[str, Any]], None]]:
        return {
            "run_query": self._on_run_query,
            "page": self._on_page,
            "refresh": self._on_refresh,
            "select_run": self._on_select_run,
            "toggle_compare": self._on_toggle_compare,
            "rerun": self._on_rerun,
        }

    def _on_run_query(self, msg: Mapping[str, Any]) -> None:
        self._load_page(req_str(msg, "query"), 0)

    def _on_page(self, msg: Mapping[str, Any]) -> None:
        self._load_page(self.query, req_int(msg, "offset"), opt_int(msg, "limit"))

    def _on_refresh(self, _msg: Mapping[str, Any]) -> None:
        self._load_page(self.query, self.offset)

    def _on_select_run(self, msg: Mapping[str, Any]) -> None:
        run_id = opt_str(msg, "run_id")
        self.read_soon(lambda: self._fetch_detail(run_id), self._apply_detail)

    def _on_toggle_compare(self, msg: Mapping[str, Any]) -> None:
        run_id = req_str(msg, "run_id")

        def toggle() -> None:
            ids = list(self.compare_ids)
            if run_id in ids:
                ids.remove(run_id)
            else:
                ids = [*ids, run_id][-2:]  # a third pick replaces the oldest
            self.apply({"compare_ids": ids})
            if len(ids) == 2:
                self.read_soon(lambda: self._fetch_diff(ids), self._apply_diff)
            else:
                self.apply({"diff": {}})

        self.call_on_loop(toggle)

    def _on_rerun(self, msg: Mapping[str, Any]) -> None:
        run_id = req_str(msg, "run_id")
        try:
            self.rerun(run_id, opt_str(msg, "model"))
        except Exception as exc:  # e.g. an unknown model: shown beside the button
            text = f"re-run of {run_id} failed: {describe(exc)}"
            self.call_on_loop(lambda: self.apply({"rerun_error": text}))

    def __repr__(self) -> str:
        return f"RunHistory(total={self.total}, offset={self.offset}, query={self.query!r})"
