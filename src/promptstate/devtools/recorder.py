"""Devtools: record every action with the state it produced; jump, skip, export, import.

Time travel is a replay: reducers are pure, so the state after any action is the base
state with the (non-skipped) actions before it reduced in order. Effects are never
replayed, so none of this touches the network or the DB.

Dispatching while jumped to the past first returns to the latest state, then applies
the action (Redux DevTools' "live" behaviour): a streaming reply or a click never lands on
an old state.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptstate.core.reducers import ACTION_TYPES, reduce
from promptstate.core.serialize import state_from_dict, state_to_dict
from promptstate.core.state import Action, State
from promptstate.errors import PromptStateError, StateImportError

if TYPE_CHECKING:
    from promptstate.core.store import Dispatch, Store

__all__ = ["EXPORT_FORMAT", "ActionRecord", "DevTools", "HistoryIndexError"]

EXPORT_FORMAT = "promptstate-devtools"
EXPORT_VERSION = 1
_REDACTED = "[redacted]"


class HistoryIndexError(PromptStateError, IndexError):
    """An action index that is not (or no longer) in the recorded history."""


@dataclass(frozen=True)
class ActionRecord:
    """One recorded action (``summary`` is a short text of the payload)."""

    index: int
    type: str
    payload: Any
    timestamp: float
    skipped: bool
    instance_id: str | None

    @property
    def summary(self) -> str:
        """A one-line digest of the payload."""
        text = json.dumps(self.payload, default=str, ensure_ascii=False)
        return text if len(text) <= 120 else text[:117] + "..."


@dataclass
class _Entry:
    index: int
    action: Action
    state: State
    timestamp: float
    skipped: bool = False


class DevTools:
    """Recorded history of one session's store (``session.devtools``).

    Parameters
    ----------
    max_age : int
        Entries kept; older ones are folded into the base state.
    secrets : callable
        Returns the secret strings (API keys) that must never appear in an export.
    """

    def __init__(self, max_age: int = 500, secrets: Callable[[], Iterable[str]] = tuple) -> None:
        if max_age < 1:
            raise ValueError("max_age must be >= 1")
        self.max_age = max_age
        self._secrets = secrets
        self._store: Store | None = None
        self._lock = threading.RLock()
        self._base: State | None = None
        self._base_index = 0  # index of the first entry kept
        self._entries: deque[_Entry] = deque()
        self._jumped: int | None = None
        self._listeners: list[Callable[[], None]] = []
        # set by the Session: restore_run(run_id, into=None) -> Instance
        self.restore_run: Callable[..., Any] = _not_attached

    # -- middleware --------------------------------------------------------------------------

    def middleware(self, store: Store) -> Callable[[Dispatch], Dispatch]:
        """The store middleware that records every action."""
        self._store = store
        if self._base is None:
            self._base = store.get_state()

        def wrap(next_dispatch: Dispatch) -> Dispatch:
            def dispatch(action: Any) -> Any:
                if not isinstance(action, Action):
                    return next_dispatch(action)
                with store.lock:
                    if self._jumped is not None:
                        self._resume_locked()
                    result = next_dispatch(action)
                    self._record(action, store.get_state())
                return result

            return dispatch

        return wrap

    def _record(self, action: Action, state: State) -> None:
        with self._lock:
            index = self._base_index + len(self._entries)
            self._entries.append(_Entry(index, action, state, time.time()))
            while len(self._entries) > self.max_age:
                old = self._entries.popleft()
                self._base = old.state  # committed: the base now includes it
                self._base_index = old.index + 1
        self._notify()

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` when the history changes (a widget's action list)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _notify(self) -> None:
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):  # a broken devtools view must not break dispatch
                listener()

    # -- reading -----------------------------------------------------------------------------

    @property
    def actions(self) -> list[ActionRecord]:
        """Every recorded action still held, oldest first."""
        return self.records()

    def records(self, start: int | None = None, stop: int | None = None) -> list[ActionRecord]:
        """Records with ``start <= index < stop`` (action indices), without building the rest."""
        with self._lock:
            lo = max(0, (start if start is not None else self._base_index) - self._base_index)
            hi = len(self._entries) if stop is None else max(0, stop - self._base_index)
            return [
                self._to_record(self._entries[p]) for p in range(lo, min(hi, len(self._entries)))
            ]

    def _to_record(self, e: _Entry) -> ActionRecord:
        payload = e.action.payload
        iid = payload.get("instance_id") if isinstance(payload, dict) else None
        return ActionRecord(e.index, e.action.type, payload, e.timestamp, e.skipped, iid)

    @property
    def first_index(self) -> int:
        """Index of the oldest action still held."""
        return self._base_index

    @property
    def last_index(self) -> int:
        """Index of the newest action (``first_index - 1`` when none)."""
        return self._base_index + len(self._entries) - 1

    @property
    def position(self) -> int | None:
        """The index jumped to, or None when showing the latest state."""
        return self._jumped

    def _entry(self, index: int) -> _Entry:
        with self._lock:
            pos = index - self._base_index
            if index < 0 or not 0 <= pos < len(self._entries):
                raise HistoryIndexError(
                    f"action {index} is not in the history (held: {self._base_index}.."
                    f"{self.last_index}; max_age={self.max_age})"
                )
            return self._entries[pos]

    def state_at(self, index: int) -> State:
        """The state right after action ``index``."""
        return self._entry(index).state

    def base_state(self) -> State:
        """The state before the oldest held action."""
        assert self._base is not None
        return self._base

    def latest_state(self) -> State:
        """The state after the newest action (what the store shows when not jumped)."""
        with self._lock:
            return self._entries[-1].state if self._entries else self.base_state()

    # -- time travel ---------------------------------------------------------------------------

    def jump(self, index: int) -> State:
        """Show the state after action ``index``; every subscribed widget follows."""
        store = self._require_store()
        with store.lock:
            state = self.state_at(index)
            self._jumped = index
            store.replace_state(state)
        self._notify()
        return state

    def resume(self) -> State:
        """Return to the latest state."""
        store = self._require_store()
        with store.lock:
            self._resume_locked()
        self._notify()
        return store.get_state()

    def _resume_locked(self) -> None:
        assert self._store is not None
        self._jumped = None
        self._store.replace_state(self.latest_state())

    def skip(self, index: int) -> bool:
        """Toggle action ``index`` out of (or back into) the history; returns ``skipped``.

        The states after it are recomputed by replaying reducers (no effects run).
        """
        store = self._require_store()
        with store.lock, self._lock:
            entry = self._entry(index)
            entry.skipped = not entry.skipped
            self._recompute_from(index)
            if self._jumped is None:
                store.replace_state(self.latest_state())
            else:
                store.replace_state(self.state_at(self._jumped))
        self._notify()
        return entry.skipped

    def _recompute_from(self, index: int) -> None:
        pos = index - self._base_index
        state = self._entries[pos - 1].state if pos > 0 else self.base_state()
        for e in list(self._entries)[pos:]:
            if not e.skipped:
                state = reduce(state, e.action)
            e.state = state

    def _require_store(self) -> Store:
        if self._store is None:
            raise PromptStateError("devtools is not attached to a store")
        return self._store

    # -- export / import -------------------------------------------------------------------------

    def export(self) -> str:
        """JSON of the base state and every held action (secrets replaced by ``[redacted]``)."""
        with self._lock:
            body = {
                "format": EXPORT_FORMAT,
                "version": EXPORT_VERSION,
                "base_index": self._base_index,
                "base_state": state_to_dict(self.base_state()),
                "actions": [
                    {
                        "index": e.index,
                        "type": e.action.type,
                        "payload": e.action.payload,
                        "timestamp": e.timestamp,
                        "skipped": e.skipped,
                    }
                    for e in self._entries
                ],
            }
        text = json.dumps(body, ensure_ascii=False, sort_keys=True, default=str)
        for secret in self._secrets():
            if secret and len(secret) >= 6:
                text = text.replace(json.dumps(secret)[1:-1], _REDACTED)
        data = json.loads(text)
        data["checksum"] = _checksum(data)
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    def import_(self, text: str | bytes) -> State:
        """Restore an export: base state + actions replayed; the live state becomes the last.

        Raises :class:`StateImportError` (and changes nothing) if the JSON is malformed,
        of another format or version, tampered with (checksum), or does not replay.
        """
        store = self._require_store()
        base, entries = parse_export(text)
        with store.lock, self._lock:
            self._base = base
            self._base_index = entries[0].index if entries else 0
            self._entries = deque(entries)
            while len(self._entries) > self.max_age:
                old = self._entries.popleft()
                self._base = old.state
                self._base_index = old.index + 1
            self._jumped = None
            store.replace_state(self.latest_state())
        self._notify()
        return store.get_state()


def _not_attached(*args: Any, **kwargs: Any) -> Any:
    raise PromptStateError("devtools is not attached to a session")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:  # json.loads would keep the last one silently: a spliced file
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _checksum(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k != "checksum"}
    raw = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    return hashlib.sha256(raw).hexdigest()


def parse_export(text: str | bytes) -> tuple[State, list[_Entry]]:
    """Validate and replay an export; returns the base state and rebuilt entries."""
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, TypeError) as exc:
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
        raise StateImportError("checksum mismatch: the export was modified or truncated")
    extra = set(data) - {"format", "version", "base_index", "base_state", "actions", "checksum"}
    if extra:
        raise StateImportError(f"unexpected field(s): {', '.join(sorted(extra))}")
    base = state_from_dict(data.get("base_state"))
    actions = data.get("actions")
    if not isinstance(actions, list):
        raise StateImportError("'actions' must be a list")
    entries: list[_Entry] = []
    state = base
    expected = data.get("base_index", 0)
    for i, a in enumerate(actions):
        if not isinstance(a, dict) or not isinstance(a.get("type"), str):
            raise StateImportError(f"actions[{i}]: expected an object with a 'type'")
        if a["type"] not in ACTION_TYPES:
            raise StateImportError(f"actions[{i}]: unknown action type {a['type']!r}")
        if a.get("index") != expected + i:
            raise StateImportError(f"actions[{i}]: index {a.get('index')!r} out of sequence")
        action = Action(a["type"], a.get("payload"))
        skipped = bool(a.get("skipped", False))
        if not skipped:
            try:
                state = reduce(state, action)
            except Exception as exc:  # a tampered payload must not half-apply
                raise StateImportError(
                    f"actions[{i}] ({a['type']}) does not replay: {type(exc).__name__}: {exc}"
                ) from None
        ts = a.get("timestamp", 0.0)
        entries.append(
            _Entry(
                expected + i,
                action,
                state,
                float(ts) if isinstance(ts, int | float) else 0.0,
                skipped,
            )
        )
    return base, entries
