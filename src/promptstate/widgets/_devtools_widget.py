"""``DevTools(session)``: the action history, time travel, skip, export and import."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import traitlets

from promptstate.devtools.recorder import ActionRecord, HistoryIndexError
from promptstate.errors import StateImportError
from promptstate.widgets._assets import module
from promptstate.widgets._panel import PanelWidget, describe, json_safe, redact, truncate
from promptstate.widgets._panel_messages import (
    ActionDetail,
    ActionRow,
    DiffEntry,
    ExportData,
    opt_int,
    req_int,
    req_str,
)
from promptstate.widgets._state_diff import state_diff

if TYPE_CHECKING:
    from promptstate.session.session import Session

__all__ = ["CHUNK_ACTION", "DevTools", "state_diff"]

# A payload shown in the detail pane is cut to this many characters of JSON; long
# strings inside it (a 10 MB variable value) are cut first.
_PAYLOAD_LIMIT = 50_000
_PAYLOAD_STRING_LIMIT = 2_000
_DIFF_MAX_ENTRIES = 200
_MAX_INSTANCE_IDS = 200
# The action each streamed chunk records (most of a short notebook's history).
CHUNK_ACTION = "runs/chunk_received"


def _cut_strings(value: Any) -> Any:
    if isinstance(value, str):
        return truncate(value, _PAYLOAD_STRING_LIMIT)
    if isinstance(value, Mapping):
        return {str(k): _cut_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_cut_strings(v) for v in value]
    return value


# -- the widget ------------------------------------------------------------------------------


class DevTools(PanelWidget):
    """The session's action history, live, with time travel.

    Lists every recorded action (newest at the bottom, the last ``window`` that match
    the filters), shows the selected action's payload and the state diff it caused,
    and drives ``session.devtools``: jump to any action (every other widget on the
    session follows, since they all read the store), resume, skip toggles, export to
    a JSON file and import one (an invalid file is reported here and changes nothing).

    Parameters
    ----------
    session : promptstate.Session
        The session whose ``session.devtools`` history to show.
    window : int
        How many actions the front end receives at once (older ones are paged).

    Examples
    --------
    >>> ps.widgets.DevTools(session)  # doctest: +SKIP
    """

    _esm = module("devtools.js")

    actions = traitlets.List(traitlets.Dict()).tag(sync=True)
    first_index = traitlets.Int(0).tag(sync=True)
    last_index = traitlets.Int(-1).tag(sync=True)
    position = traitlets.Int(None, allow_none=True).tag(sync=True)
    total = traitlets.Int(0).tag(sync=True)
    offset = traitlets.Int(0).tag(sync=True)
    window = traitlets.Int(200).tag(sync=True)
    filter_type = traitlets.Unicode("").tag(sync=True)
    filter_instance = traitlets.Unicode("").tag(sync=True)
    instance_ids = traitlets.List(traitlets.Unicode()).tag(sync=True)
    selected = traitlets.Int(None, allow_none=True).tag(sync=True)
    detail = traitlets.Dict().tag(sync=True)
    show_chunks = traitlets.Bool(False).tag(sync=True)
    hidden_chunks = traitlets.Int(0).tag(sync=True)

    def __init__(self, session: Session, *, window: int = 200, **kwargs: Any) -> None:
        if not hasattr(session, "devtools") or not hasattr(session, "store"):
            raise TypeError(f"DevTools() takes a ps.Session, not {type(session).__name__}")
        if window < 1:
            raise ValueError("window must be >= 1")
        # index -> (payload object, skipped, row); payloads are immutable once recorded,
        # and an import brings new payload objects, so identity says when to rebuild.
        self._rows: dict[int, tuple[object, bool, ActionRow]] = {}
        self._detail_key: tuple[object, ...] | None = None
        self._session = session  # read by _collect, before the comm opens with the list
        initial = self._collect(window=window)
        super().__init__(session, window=window, **initial, **kwargs)

    def _store_changed(self) -> None:
        self.request_refresh()

    # -- history -> traits -------------------------------------------------------------------

    def _row(self, rec: ActionRecord, instance_id: str | None) -> ActionRow:
        cached = self._rows.get(rec.index)
        if cached is not None and cached[0] is rec.action and cached[1] == rec.skipped:
            return cached[2]
        row = ActionRow(
            index=rec.index,
            type=rec.type,
            instance_id=instance_id,
            summary=redact(rec.summary),
            timestamp=rec.timestamp,
            skipped=rec.skipped,
        )
        self._rows[rec.index] = (rec.action, rec.skipped, row)
        return row

    def _refresh(self) -> None:
        self.apply(self._collect())

    def _collect(self, window: int | None = None) -> dict[str, Any]:
        """Trait values for the current history, filters and selection."""
        dt = self._session.devtools
        records = dt.actions
        # Run lifecycle actions after "pending" name only their request: map it back.
        owner: dict[str, str] = {}
        for rec in records:
            p = rec.payload
            if rec.type == "runs/execute_pending" and isinstance(p, dict):
                rid, iid = p.get("request_id"), p.get("instance_id")
                if isinstance(rid, str) and isinstance(iid, str):
                    owner[rid] = iid

        def instance_of(rec: ActionRecord) -> str | None:
            if rec.instance_id is not None:
                return str(rec.instance_id)
            p = rec.payload
            if isinstance(p, dict):
                rid = p.get("request_id", p.get("run_id"))
                if isinstance(rid, str):
                    return owner.get(rid)
            return None

        ftype, finst = self.filter_type.strip(), self.filter_instance.strip()
        # One streamed reply is one action per chunk: hidden unless asked for (or
        # named by the type filter), so the list shows what happened.
        hide_chunks = not self.show_chunks and CHUNK_ACTION not in ftype
        hidden = 0
        seen_ids: dict[str, None] = {}
        matching: list[tuple[ActionRecord, str | None]] = []
        for rec in records:
            iid = instance_of(rec)
            if iid is not None and len(seen_ids) < _MAX_INSTANCE_IDS:
                seen_ids[iid] = None
            if ftype and ftype not in rec.type:
                continue
            if finst and (iid is None or finst not in iid):
                continue
            if hide_chunks and rec.type == CHUNK_ACTION:
                hidden += 1
                continue
            matching.append((rec, iid))
        total = len(matching)
        size = self.window if window is None else window
        offset = max(0, min(self.offset, total - size))  # the oldest page is a full one
        end = total - offset
        shown = matching[max(0, end - size) : end]
        rows = [self._row(rec, iid) for rec, iid in shown]
        first = records[0].index if records else dt.first_index
        for stale in [i for i in self._rows if i < first]:
            del self._rows[stale]
        values: dict[str, Any] = {
            "actions": rows,
            "first_index": first,
            "last_index": records[-1].index if records else dt.last_index,
            "position": dt.position,
            "total": total,
            "offset": offset,
            "instance_ids": list(seen_ids),
            "hidden_chunks": hidden,
        }
        sel = self.selected
        if (
            sel is not None
            and any(rec.index == sel for rec in records)
            and all(rec.index != sel for rec, _ in matching)
        ):
            # the selected action is filtered out: a pane about a row not listed misleads
            self._detail_key = None
            values.update(
                {"selected": None, "detail": {}, "notice": f"action #{sel} is filtered out"}
            )
        else:
            values.update(self._detail_values(records))
        return values

    def _detail_values(self, records: list[ActionRecord]) -> dict[str, Any]:
        index = self.selected
        if index is None:
            self._detail_key = None
            return {"detail": {}}
        dt = self._session.devtools
        rec = next((r for r in records if r.index == index), None)
        try:
            if rec is None:
                raise HistoryIndexError(f"action {index} is no longer in the history")
            before = dt.state_at(index - 1) if index > records[0].index else dt.base_state()
            after = dt.state_at(index)
        except HistoryIndexError as exc:
            self._detail_key = None
            return {"detail": {}, "selected": None, "notice": str(exc)}
        key = (index, rec.action, rec.skipped, before, after)
        if self._detail_key is not None and all(
            x is y for x, y in zip(key, self._detail_key, strict=True)
        ):
            return {}
        self._detail_key = key
        diff = state_diff(before, after)
        # redacted before it is cut, so no prefix of a secret survives the cut
        payload = truncate(
            redact(json.dumps(json_safe(_cut_strings(rec.payload)), indent=2, ensure_ascii=False)),
            _PAYLOAD_LIMIT,
        )
        detail = ActionDetail(
            index=index,
            type=rec.type,
            instance_id=rec.instance_id,
            timestamp=rec.timestamp,
            skipped=rec.skipped,
            payload=payload,
            diff=[
                DiffEntry(
                    path=e["path"],
                    op=e["op"],
                    old=None if e["old"] is None else redact(e["old"]),
                    new=None if e["new"] is None else redact(e["new"]),
                )
                for e in diff[:_DIFF_MAX_ENTRIES]
            ],
            diff_truncated=len(diff) > _DIFF_MAX_ENTRIES,
        )
        return {"detail": dict(detail)}

    # -- Python API ------------------------------------------------------------------------------

    def select(self, index: int | None) -> None:
        """Show action ``index``'s payload and state diff (``None`` closes the pane)."""
        self.apply({"selected": index, "notice": ""})
        self._detail_key = None
        self._refresh()

    def set_filter(self, action_type: str = "", instance_id: str = "") -> None:
        """Show only actions whose type / instance id contain these substrings."""
        self.apply({"filter_type": action_type, "filter_instance": instance_id, "offset": 0})
        self._refresh()

    def set_show_chunks(self, show: bool) -> None:
        """List every ``runs/chunk_received`` action too (hidden by default)."""
        self.apply({"show_chunks": bool(show), "offset": 0})
        self._refresh()

    # -- front end -> devtools -------------------------------------------------------------------

    def _handlers(self) -> Mapping[str, Callable[[Mapping[str, Any]], None]]:
        return {
            "filter": self._on_filter,
            "show_chunks": self._on_show_chunks,
            "page": self._on_page,
            "select": self._on_select,
            "jump": self._on_jump,
            "resume": self._on_resume,
            "skip": self._on_skip,
            "export": self._on_export,
            "import": self._on_import,
        }

    def _on_filter(self, msg: Mapping[str, Any]) -> None:
        ftype = req_str(msg, "action_type")
        finst = req_str(msg, "instance_id")
        self.call_on_loop(lambda: self.set_filter(ftype, finst))

    def _on_show_chunks(self, msg: Mapping[str, Any]) -> None:
        show = msg.get("show")
        if not isinstance(show, bool):
            raise ValueError("'show_chunks' message needs a boolean 'show'")
        self.call_on_loop(lambda: self.set_show_chunks(show))

    def _on_page(self, msg: Mapping[str, Any]) -> None:
        offset = max(0, req_int(msg, "offset"))

        def apply() -> None:
            self.apply({"offset": offset})
            self._refresh()

        self.call_on_loop(apply)

    def _on_select(self, msg: Mapping[str, Any]) -> None:
        index = opt_int(msg, "index")
        self.call_on_loop(lambda: self.select(index))

    def _on_jump(self, msg: Mapping[str, Any]) -> None:
        # Thread-safe: the store lock is taken; the store and devtools listeners
        # (every widget of the session, this one too) refresh on the loop.
        self._session.devtools.jump(req_int(msg, "index"))

    def _on_resume(self, _msg: Mapping[str, Any]) -> None:
        self._session.devtools.resume()

    def _on_skip(self, msg: Mapping[str, Any]) -> None:
        index = req_int(msg, "index")
        skipped = self._session.devtools.skip(index)
        text = f"action #{index} {'skipped' if skipped else 'restored'}; later states replayed"
        self.call_on_loop(lambda: self._set_notice(text))

    def _on_export(self, _msg: Mapping[str, Any]) -> None:
        text = self._session.devtools.export()
        stamp = time.strftime("%Y%m%d-%H%M%S")
        reply = ExportData(
            type="export_data", filename=f"promptstate-devtools-{stamp}.json", text=text
        )
        count = len(self._session.devtools.actions)

        def send() -> None:
            self.send(dict(reply))
            self._set_notice(f"exported {count} actions ({len(text):,} bytes)")

        self.call_on_loop(send)

    def _on_import(self, msg: Mapping[str, Any]) -> None:
        text = req_str(msg, "text")
        try:
            self._session.import_state(text)
        except StateImportError as exc:
            error = describe(exc)
            self.call_on_loop(lambda: self._set_error(error))
            return
        dt = self._session.devtools
        note = f"imported {dt.last_index - dt.first_index + 1} actions; live state restored"

        def done() -> None:
            self._rows.clear()
            self.apply({"notice": note, "selected": None, "offset": 0})
            self._refresh()

        self.call_on_loop(done)

    # -- lifecycle -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"DevTools(actions={self.total}, position={self.position})"
