"""Comm payloads of the session panels: DevTools, RunHistory and SweepGrid.

Front end to kernel (custom messages), by widget::

    DevTools (js/devtools.js)
    {"type": "filter", "action_type": str, "instance_id": str}   substring filters
    {"type": "page", "offset": int}          newest matching actions hidden (0 = live tail)
    {"type": "select", "index": int | None}  show payload + state diff (None closes)
    {"type": "jump", "index": int}           time travel: the live state becomes that one
    {"type": "resume"}                       back to the latest state
    {"type": "skip", "index": int}           toggle the action out of the history
    {"type": "export"}                       answered with ExportData
    {"type": "import", "text": str}          an export's JSON (file picker or pasted)

    RunHistory (js/history.js)
    {"type": "run_query", "query": str}      first page of a new query
    {"type": "page", "offset": int, "limit": int | None}
    {"type": "refresh"}                      the current page again
    {"type": "select_run", "run_id": str | None}
    {"type": "toggle_compare", "run_id": str}  two selected runs give a diff
    {"type": "rerun", "run_id": str, "model": str | None}   answered with RerunDone

    SweepGrid (js/sweep.js)
    {"type": "select", "index": int | None}  a cell's run detail
    {"type": "cancel"}

Kernel to front end: trait updates (the row/detail TypedDicts below) and the custom
replies :class:`ExportData` and :class:`RerunDone`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

__all__ = [
    "ActionDetail",
    "ActionRow",
    "DiffEntry",
    "ExportData",
    "RerunDone",
    "RunDetail",
    "RunDiffPayload",
    "SweepCellPayload",
    "message_kind",
    "opt_int",
    "opt_str",
    "req_int",
    "req_str",
]


# -- kernel -> front end -------------------------------------------------------------------


class ActionRow(TypedDict):
    """One line of the DevTools action list."""

    index: int
    type: str
    instance_id: str | None
    summary: str
    timestamp: float
    skipped: bool


class DiffEntry(TypedDict):
    """One changed path of a state diff; ``old``/``new`` are JSON text (None when absent)."""

    path: str
    op: Literal["add", "remove", "change"]
    old: str | None
    new: str | None


class ActionDetail(TypedDict):
    """The selected action: payload (pretty JSON) and the state diff it caused."""

    index: int
    type: str
    instance_id: str | None
    timestamp: float
    skipped: bool
    payload: str
    diff: list[DiffEntry]
    diff_truncated: bool


class ExportData(TypedDict):
    """Reply to ``export``: the front end saves ``text`` as ``filename``."""

    type: Literal["export_data"]
    filename: str
    text: str


class RunDetail(TypedDict, total=False):
    """A run as the detail pane shows it (RunHistory and SweepGrid)."""

    run_id: str
    prompt_id: str
    prompt_version: str
    provider: str
    model: str
    status: str
    response: str | None
    error: str | None
    variables: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    metrics: dict[str, Any]


class RunDiffPayload(TypedDict):
    """Two runs side by side: differing fields and variables, unified diffs."""

    a: str
    b: str
    fields: list[dict[str, Any]]
    variables: list[dict[str, Any]]
    messages: str
    response: str
    same_prompt: bool


class RerunDone(TypedDict):
    """Reply to ``rerun`` once the new run finished (or failed to start)."""

    type: Literal["rerun_done"]
    run_id: str
    new_run_id: str | None
    ok: bool
    status: str
    error: str | None


class SweepCellPayload(TypedDict):
    """One cell of the sweep grid (``row``: variable set, ``col``: model)."""

    index: int
    row: int
    col: int
    repeat: int
    status: str
    run_id: str | None
    response: str | None
    error: str | None
    latency_ms: float | None
    output_tokens: int | None


# -- front end -> kernel: validation helpers -------------------------------------------------


def message_kind(content: object) -> tuple[str, Mapping[str, Any]]:
    """The ``type`` of a custom message and the message (raises ValueError)."""
    if not isinstance(content, Mapping):
        raise ValueError(f"widget message must be an object, not {type(content).__name__}")
    kind = content.get("type")
    if not isinstance(kind, str):
        raise ValueError("widget message needs a string 'type'")
    return kind, content


def req_str(content: Mapping[str, Any], key: str) -> str:
    value = content.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{content.get('type')!r} message needs a string {key!r}")
    return value


def opt_str(content: Mapping[str, Any], key: str) -> str | None:
    value = content.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{content.get('type')!r} message: {key!r} must be a string or null")
    return value


def req_int(content: Mapping[str, Any], key: str) -> int:
    value = content.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{content.get('type')!r} message needs an integer {key!r}")
    return value


def opt_int(content: Mapping[str, Any], key: str) -> int | None:
    value = content.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{content.get('type')!r} message: {key!r} must be an integer or null")
    return value
