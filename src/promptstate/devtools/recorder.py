"""Devtools: every action with the state it produced; jump, skip, export, import.

Time travel is a replay: reducers are pure, so the state after any action is the base
state with the (non-skipped) actions before it reduced in order. Effects are never
replayed, so none of this touches the network or the DB.

The rule while viewing the past: the next action (an edit, a streamed chunk, a send)
first returns the store to the present and applies there. A send made while viewing the
past therefore sends the present state; the viewed state can be brought back as a new
instance with :meth:`DevTools.restore_run` instead. This is implemented in one place,
:meth:`DevTools.live_state`, which the store calls under its lock for every action.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from promptstate.core.actions import Action
from promptstate.core.codec import action_to_json
from promptstate.core.reducers import reduce
from promptstate.core.state import State
from promptstate.core.store import Store
from promptstate.devtools.export import Entry, dump_export, parse_export
from promptstate.errors import PromptStateError
from promptstate.models.redact import redact

__all__ = ["ActionRecord", "DevTools", "HistoryIndexError"]


class HistoryIndexError(PromptStateError, IndexError):
    """An action index that is not (or no longer) in the recorded history."""


@dataclass(frozen=True)
class ActionRecord:
    """One recorded action (``summary`` is a short, redacted text of the payload)."""

    index: int
    type: str
    payload: Any
    timestamp: float
    skipped: bool
    instance_id: str | None
    action: Action = field(compare=False, repr=False)

    @property
    def summary(self) -> str:
        """A one-line digest of the payload."""
        text = redact(json.dumps(self.payload, default=str, ensure_ascii=False))
        return text if len(text) <= 120 else text[:117] + "..."


class DevTools:
    """Recorded history of one session's store (``session.devtools``).

    Attach with ``Store(..., recorder=devtools)`` and then :meth:`attach`. Views follow
    it through ``store.subscribe``: jump, skip and import swap the store's state.

    Parameters
    ----------
    max_age : int
        Entries kept; older ones are folded into the base state.
    """

    def __init__(self, max_age: int = 500) -> None:
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 1:
            raise ValueError("history must be an integer >= 1")
        self.max_age = max_age
        self._store: Store | None = None
        self._lock = threading.RLock()
        self._base: State | None = None
        self._base_index = 0  # index of the first entry kept
        self._entries: deque[Entry] = deque()
        self._jumped: int | None = None
        # set by the session: restore_run(run_id, into=None) -> Instance
        self.restore_run: Callable[..., Any] = _not_attached

    def attach(self, store: Store) -> None:
        """Bind to the store whose history this records."""
        self._store = store
        if self._base is None:
            self._base = store.get_state()

    # -- the store's Recorder protocol (called under the store lock) -------------------------

    def live_state(self, current: State) -> State:
        """The present: leaves the past first if a jump is showing it."""
        with self._lock:
            if self._jumped is None:
                return current
            self._jumped = None
            return self._latest()

    def next_index(self) -> int:
        """The index the next recorded action gets."""
        with self._lock:
            return self._base_index + len(self._entries)

    def record(self, action: Action, state: State) -> None:
        """Append one action and the state it produced."""
        with self._lock:
            index = self._base_index + len(self._entries)
            self._entries.append(Entry(index, action, state, time.time()))
            while len(self._entries) > self.max_age:
                old = self._entries.popleft()
                self._base = old.state  # committed: the base now includes it
                self._base_index = old.index + 1

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
            return [_to_record(self._entries[p]) for p in range(lo, min(hi, len(self._entries)))]

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
        """The index jumped to, or None when showing the present."""
        return self._jumped

    @property
    def viewing_past(self) -> bool:
        """True while a jump shows an earlier state (every widget says so)."""
        return self._jumped is not None

    def _entry(self, index: int) -> Entry:
        with self._lock:
            pos = index - self._base_index
            if isinstance(index, bool) or not isinstance(index, int):
                raise HistoryIndexError(f"action index must be an integer, not {index!r}")
            if index < 0 or not 0 <= pos < len(self._entries):
                raise HistoryIndexError(
                    f"action {index} is not in the history (held: {self._base_index}.."
                    f"{self.last_index}; max_age={self.max_age})"
                )
            return self._entries[pos]

    def state_at(self, index: int) -> State:
        """The state right after action ``index``."""
        return self._entry(index).state

    def action_at(self, index: int) -> Action:
        """The action recorded at ``index``."""
        return self._entry(index).action

    def base_state(self) -> State:
        """The state before the oldest held action."""
        assert self._base is not None
        return self._base

    def _latest(self) -> State:
        return self._entries[-1].state if self._entries else self.base_state()

    def latest_state(self) -> State:
        """The state after the newest action (what the store shows when not jumped)."""
        with self._lock:
            return self._latest()

    # -- time travel ---------------------------------------------------------------------------

    def jump(self, index: int) -> State:
        """Show the state after action ``index``; every subscribed view follows."""
        store = self._require_store()
        with store.lock, self._lock:
            state = self.state_at(index)
            self._jumped = index
            store.swap_state(state)
        store.notify()
        return state

    def resume(self) -> State:
        """Return to the present."""
        store = self._require_store()
        with store.lock, self._lock:
            self._jumped = None
            store.swap_state(self._latest())
        store.notify()
        return store.get_state()

    def skip(self, index: int) -> bool:
        """Toggle action ``index`` out of (or back into) the history; returns ``skipped``.

        The states after it are recomputed by replaying reducers (no effects run).
        Lifecycle actions of runs (``runs/...``) cannot be skipped: a run that started
        must end, and skipping its end would leave its instance busy forever.
        """
        store = self._require_store()
        with store.lock, self._lock:
            entry = self._entry(index)
            if entry.action.type.startswith("runs/"):
                raise HistoryIndexError(
                    f"action {index} ({entry.action.type}) is part of a run's lifecycle "
                    "and cannot be skipped"
                )
            entry.skipped = not entry.skipped
            self._recompute_from(index)
            store.swap_state(
                self._latest() if self._jumped is None else self.state_at(self._jumped)
            )
        store.notify()
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
            return dump_export(self.base_state(), self._base_index, list(self._entries))

    def import_(self, text: str | bytes) -> State:
        """Restore an export: base state + actions replayed; the live state becomes the last.

        Raises :class:`StateImportError` (and changes nothing) if the file is malformed,
        of another format or version, corrupted (checksum), or does not replay. Runs that
        were in flight when the export was taken have no task here: the session ends them
        (``error``) right after the import, so no instance is left busy.
        """
        store = self._require_store()
        base, base_index, entries = parse_export(text)
        with store.lock, self._lock:
            self._base = base
            self._base_index = base_index
            self._entries = deque(entries)
            while len(self._entries) > self.max_age:
                old = self._entries.popleft()
                self._base = old.state
                self._base_index = old.index + 1
            self._jumped = None
            store.swap_state(self._latest())
        store.notify()
        return store.get_state()


def _to_record(e: Entry) -> ActionRecord:
    return ActionRecord(
        e.index,
        e.action.type,
        action_to_json(e.action),
        e.timestamp,
        e.skipped,
        e.action.instance_id_or_none,
        e.action,
    )


def _not_attached(*args: Any, **kwargs: Any) -> Any:
    raise PromptStateError("devtools is not attached to a session")
