"""Shared machinery of the session panels (DevTools, RunHistory, SweepGrid).

A panel is bound to a session, not to one instance. Like the instance widgets, its
traits are written by the kernel only, always on the main loop, and front-end input
arrives as custom messages (possibly on a kernel subshell thread). Run-log reads a
message asks for (a query page, a run, a diff) run on the panel's own worker thread,
never on the kernel's loop (each read has its own DuckDB cursor and a time limit), and
their results are applied on the loop in the order asked. Errors are shown in the
panel's ``error`` trait, never raised into a comm log.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as _dt
import decimal
import json
import math
import uuid
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import anywidget
import traitlets

from promptstate.engine.history import RunDiff
from promptstate.models.redact import redact as _redact
from promptstate.models.run import RunResult
from promptstate.widgets._assets import stylesheet
from promptstate.widgets._binding import MIN_SYNC_INTERVAL, Coalescer
from promptstate.widgets._panel_messages import RunDetail, RunDiffPayload, message_kind

if TYPE_CHECKING:
    from promptstate.session.session import Session

__all__ = [
    "PanelWidget",
    "describe",
    "dumps",
    "json_safe",
    "redact",
    "run_detail_payload",
    "run_diff_payload",
    "truncate",
]

T = TypeVar("T")

# Largest integer a JavaScript number holds exactly.
_JS_SAFE_INT = 2**53 - 1
# Text longer than this is cut in the detail panes (the run log keeps all of it).
DETAIL_TEXT_LIMIT = 20_000


def describe(exc: BaseException) -> str:
    """``"TypeName: message"``, the way every panel shows an error."""
    return f"{type(exc).__name__}: {exc}"


def truncate(text: str, limit: int | None) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis when cut."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + "…"


def json_safe(value: Any, limit: int | None = None) -> Any:
    """A JSON-ready copy of a DuckDB value (datetimes, decimals, UUIDs, blobs -> text).

    Strings are cut to ``limit`` characters; integers beyond what a JavaScript number
    holds exactly, and non-finite floats, become text.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= _JS_SAFE_INT else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return truncate(value, limit)
    if isinstance(value, _dt.datetime):
        return truncate(value.isoformat(sep=" "), limit)
    if isinstance(value, _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta | decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return truncate("\\x" + bytes(value).hex(), limit)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, limit) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v, limit) for v in value]
    return truncate(str(value), limit)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced (the one redactor, before any cut)."""
    return _redact(text)


_METRIC_COLUMNS = (
    "input_tokens",
    "output_tokens",
    "latency_ms",
    "ttft_ms",
    "cost_usd",
    "attempts",
    "cache_hit",
    "started_at",
    "finished_at",
    "instance_id",
    "sweep_id",
    "action_index",
    "state_hash",
)


def run_detail_payload(rec: RunResult) -> RunDetail:
    """Everything the detail pane shows about one run."""
    lim = DETAIL_TEXT_LIMIT
    return RunDetail(
        run_id=rec.run_id,
        prompt_id=rec.prompt_id,
        prompt_version=rec.prompt_version,
        provider=rec.provider,
        model=rec.model,
        status=rec.status,
        response=None if rec.response is None else truncate(redact(rec.response), lim),
        error=None if rec.error is None else redact(rec.error),
        variables=[
            {"name": name, "value": json_safe(value, lim), "source": source}
            for name, (value, source) in rec.variables.items()
        ],
        messages=[{"role": m.role, "content": truncate(m.content, lim)} for m in rec.messages],
        metrics={col: json_safe(rec.row.get(col)) for col in _METRIC_COLUMNS},
    )


def run_diff_payload(diff: RunDiff) -> RunDiffPayload:
    """A :class:`RunDiff` for the side-by-side pane."""
    lim = DETAIL_TEXT_LIMIT
    return RunDiffPayload(
        a=diff.a,
        b=diff.b,
        fields=[
            {"name": k, "a": json_safe(a, lim), "b": json_safe(b, lim)}
            for k, (a, b) in diff.fields.items()
        ],
        variables=[
            {"name": k, "a": json_safe(a, lim), "b": json_safe(b, lim)}
            for k, (a, b) in diff.variables.items()
        ],
        messages=truncate(diff.messages, 4 * lim),
        response=truncate(diff.response, 4 * lim),
        same_prompt=diff.same_prompt,
    )


class PanelWidget(anywidget.AnyWidget):
    """Base of the session panels: error/notice traits, marshalling onto the main loop.

    Subclasses set ``_esm``, implement :meth:`_refresh` (called on the loop, at most
    once per ``sync_interval`` seconds, after :meth:`request_refresh`) and map message
    types to handlers in :meth:`_handlers`.
    """

    _css = stylesheet("panels.css")

    error = traitlets.Unicode("").tag(sync=True)
    notice = traitlets.Unicode("").tag(sync=True)
    viewing_past = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self, session: Session, *, sync_interval: float = MIN_SYNC_INTERVAL, **kwargs: Any
    ) -> None:
        self._session = session
        self._closed = False
        self._reader: concurrent.futures.ThreadPoolExecutor | None = None
        past = session.devtools.viewing_past
        self._past_seen = past
        super().__init__(viewing_past=past, **kwargs)
        self._coalescer = Coalescer(self._session.main_loop(), self._refresh_if_open, sync_interval)
        self.on_msg(self._on_client_message)
        # one store listener per panel: it mirrors devtools' viewing_past (a jump or a
        # resume notifies the store's listeners) and calls the subclass's hook
        self._unsubscribe_store: Callable[[], None] = session.store.subscribe(self._store_notified)

    def _store_notified(self) -> None:
        # any thread, on every store change: cheap unless something this panel shows moved
        past = self._session.devtools.viewing_past
        if past is not self._past_seen:
            self._past_seen = past
            self.call_on_loop(
                lambda: self.apply({"viewing_past": self._session.devtools.viewing_past})
            )
        self._store_changed()

    def _store_changed(self) -> None:
        """Called on every store change, on the dispatching thread (keep it cheap)."""

    @property
    def session(self) -> Session:
        """The session this panel shows."""
        return self._session

    # -- threads ---------------------------------------------------------------------------------

    def _on_loop_thread(self) -> bool:
        loop = self._coalescer.loop
        if loop is None:
            return True
        try:
            return asyncio.get_running_loop() is loop
        except RuntimeError:
            return False

    def call_on_loop(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the main loop (at once when already there); never after close.

        An exception ``fn`` raises is shown in ``error``.
        """

        def guarded() -> None:
            if self._closed:
                return
            try:
                fn()
            except Exception as exc:
                self._set_error(describe(exc))

        if self._on_loop_thread():
            guarded()
        else:
            self._coalescer.call_soon(guarded)

    def request_refresh(self) -> None:
        """Ask for a (coalesced) :meth:`_refresh` on the loop; safe from any thread."""
        self._coalescer.request()

    def _refresh_if_open(self) -> None:
        if not self._closed:
            self._refresh()

    def _refresh(self) -> None:
        """Pull the current data into traits (on the loop)."""

    def read_soon(self, work: Callable[[], T], apply: Callable[[T], None]) -> None:
        """Run the run-log read ``work`` off the loop, then ``apply`` its result on it.

        Reads run one at a time on this panel's worker thread, in the order asked, so the
        last page asked for is the one shown; the kernel's loop never waits for DuckDB.
        Without a loop (a plain script) both run at once. An exception is shown in
        ``error``.
        """
        if self._coalescer.loop is None:
            self.call_on_loop(lambda: apply(work()))
            return
        if self._reader is None:
            self._reader = concurrent.futures.ThreadPoolExecutor(
                1, thread_name_prefix="promptstate-panel"
            )

        def job() -> None:
            try:
                result = work()
            except Exception as exc:
                text = describe(exc)
                self.call_on_loop(lambda: self._set_error(text))
                return
            self.call_on_loop(lambda: apply(result))

        self._reader.submit(job)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the session's main loop without blocking."""
        return self._session.spawn(coro)

    # -- front end -> kernel ----------------------------------------------------------------------

    def _handlers(self) -> Mapping[str, Callable[[Mapping[str, Any]], None]]:
        return {}

    def _on_client_message(self, _widget: object, content: object, _buffers: object) -> None:
        try:
            kind, msg = message_kind(content)
            handler = self._handlers().get(kind)
            if handler is None:
                raise ValueError(f"unknown {type(self).__name__} message type {kind!r}")
            self.call_on_loop(lambda: self._set_error(""))
            handler(msg)
        except Exception as exc:  # shown in the widget, never lost in a comm log
            text = describe(exc)
            self.call_on_loop(lambda: self._set_error(text))

    def _set_error(self, text: str) -> None:
        self.error = text

    def _set_notice(self, text: str) -> None:
        self.notice = text

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Apply front-end updates, except to the traits the kernel owns."""
        owned = set(type(self).class_trait_names(sync=True)) - _BASE_SYNCED
        allowed = {k: v for k, v in sync_data.items() if k not in owned}
        if allowed:
            super().set_state(allowed)

    def apply(self, values: Mapping[str, Any]) -> None:
        """Set several traits in one comm message (on the loop), skipping unchanged ones."""
        changed = {k: v for k, v in values.items() if getattr(self, k) != v}
        if not changed:
            return
        with self.hold_sync():
            for key, value in changed.items():
                setattr(self, key, value)

    # -- lifecycle -------------------------------------------------------------------------------

    def _stop(self) -> None:
        """Subclasses drop their subscriptions here."""

    def close(self) -> None:
        """Unsubscribe and close the comm (removes every view)."""
        # Also reached from Widget.__del__ on a half-built widget: attributes may be missing.
        self._closed = True
        coalescer: Coalescer | None = getattr(self, "_coalescer", None)
        if coalescer is not None:
            coalescer.stop()
        unsubscribe: Callable[[], None] | None = getattr(self, "_unsubscribe_store", None)
        if unsubscribe is not None:
            unsubscribe()
        self._stop()
        reader = getattr(self, "_reader", None)
        if reader is not None:
            reader.shutdown(wait=False)
        super().close()


_BASE_SYNCED = frozenset(anywidget.AnyWidget.class_trait_names(sync=True))


def dumps(value: Any) -> str:
    """Compact JSON text of a JSON-ready value (non-JSON leaves as text)."""
    return json.dumps(value, ensure_ascii=False, default=str)
