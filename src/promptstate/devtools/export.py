"""Devtools export files: JSON of a base state and the actions after it.

The checksum detects a truncated or corrupted file; it is not a signature (anyone can
recompute it), so an import never trusts the file: every field of the base state and of
every action is validated against the state and action types, and the actions are
replayed through the reducers before anything is swapped in.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from promptstate.core.actions import Action
from promptstate.core.codec import action_from_json, action_to_json
from promptstate.core.reducers import reduce
from promptstate.core.serialize import state_from_dict, state_to_dict
from promptstate.core.state import State
from promptstate.errors import StateImportError
from promptstate.models.redact import redact

__all__ = ["EXPORT_FORMAT", "EXPORT_VERSION", "Entry", "dump_export", "parse_export"]

EXPORT_FORMAT = "promptstate-devtools"
EXPORT_VERSION = 2
# a hostile file must not exhaust the stack or memory before validation rejects it
MAX_EXPORT_BYTES = 256 * 1024 * 1024
_MAX_DEPTH = 64


@dataclass
class Entry:
    """One recorded action, the state it produced, and whether it is skipped."""

    index: int
    action: Action
    state: State
    timestamp: float
    skipped: bool = False


def _checksum(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "checksum"}
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()


def dump_export(base: State, base_index: int, entries: list[Entry]) -> str:
    """The export text; every registered secret is redacted before the checksum."""
    body = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "base_index": base_index,
        "base_state": state_to_dict(base),
        "actions": [
            {
                "index": e.index,
                "type": e.action.type,
                "payload": action_to_json(e.action),
                "timestamp": e.timestamp,
                "skipped": e.skipped,
            }
            for e in entries
        ],
    }
    data = json.loads(redact(json.dumps(body, ensure_ascii=False, sort_keys=True)))
    data["checksum"] = _checksum(data)
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:  # json.loads would keep the last one silently: a spliced file
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _depth_ok(text: str) -> bool:
    depth = deepest = 0
    in_str = escaped = False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > _MAX_DEPTH:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def parse_export(text: str | bytes) -> tuple[State, int, list[Entry]]:
    """Validate and replay an export: ``(base_state, base_index, entries)``.

    Raises :class:`StateImportError` for anything malformed; nothing is changed.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StateImportError(f"not UTF-8: {exc}") from None
    if not isinstance(text, str):
        raise StateImportError(f"expected the export's text, not {type(text).__name__}")
    if len(text) > MAX_EXPORT_BYTES:
        raise StateImportError("export too large")
    if not _depth_ok(text):
        raise StateImportError(f"nested deeper than {_MAX_DEPTH} levels")
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, TypeError, RecursionError) as exc:
        raise StateImportError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise StateImportError("expected a JSON object")
    if data.get("format") != EXPORT_FORMAT:
        raise StateImportError(f"not a promptstate devtools export (format={data.get('format')!r})")
    if data.get("version") != EXPORT_VERSION:
        raise StateImportError(
            f"unsupported export version {data.get('version')!r} "
            f"(this promptstate reads {EXPORT_VERSION})"
        )
    if data.get("checksum") != _checksum(data):
        raise StateImportError("checksum mismatch: the export is truncated or corrupted")
    extra = set(data) - {"format", "version", "base_index", "base_state", "actions", "checksum"}
    if extra:
        raise StateImportError(f"unexpected field(s): {', '.join(sorted(extra))}")
    base = state_from_dict(data.get("base_state"))
    actions = data.get("actions")
    if not isinstance(actions, list):
        raise StateImportError("'actions' must be a list")
    base_index = data.get("base_index", 0)
    if isinstance(base_index, bool) or not isinstance(base_index, int) or base_index < 0:
        raise StateImportError("'base_index' must be a non-negative integer")
    entries: list[Entry] = []
    state = base
    for i, a in enumerate(actions):
        if not isinstance(a, dict):
            raise StateImportError(f"actions[{i}]: expected an object")
        unknown = set(a) - {"index", "type", "payload", "timestamp", "skipped"}
        if unknown:
            raise StateImportError(f"actions[{i}]: unexpected field(s) {sorted(unknown)}")
        if a.get("index") != base_index + i:
            raise StateImportError(f"actions[{i}]: index {a.get('index')!r} out of sequence")
        try:
            action = action_from_json(str(a.get("type")), a.get("payload"))
        except StateImportError as exc:
            raise StateImportError(f"actions[{i}]: {exc}") from None
        skipped = a.get("skipped", False)
        ts = a.get("timestamp", 0.0)
        if not isinstance(skipped, bool) or isinstance(ts, bool) or not isinstance(ts, int | float):
            raise StateImportError(f"actions[{i}]: bad 'skipped' or 'timestamp'")
        if not skipped:
            try:
                state = reduce(state, action)
            except Exception as exc:  # a hostile payload must not half-apply
                raise StateImportError(
                    f"actions[{i}] ({action.type}) does not replay: {type(exc).__name__}: {exc}"
                ) from None
        entries.append(Entry(base_index + i, action, state, float(ts), skipped))
    return base, base_index, entries
