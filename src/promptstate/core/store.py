"""A small thread-safe Redux store: dispatch, transact, get_state, subscribe, middleware.

Every state change is reduced under one lock; listeners are called after the lock is
released, on the dispatching thread, in every configuration (a recorder such as the
devtools runs *inside* the lock through :class:`Recorder`, never by wrapping dispatch in
it). A listener may dispatch again, from any thread, without deadlocking.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from promptstate.core.actions import Action
from promptstate.core.state import State

__all__ = [
    "Dispatch",
    "GetState",
    "Listener",
    "Middleware",
    "Recorder",
    "Reducer",
    "Store",
    "Transaction",
]

log = logging.getLogger("promptstate")

Reducer = Callable[[State, Action], State]
GetState = Callable[[], State]
Dispatch = Callable[[Any], Any]
Listener = Callable[[], None]
# Middleware in Redux's curried shape: mw(store)(next_dispatch)(action) -> result
Middleware = Callable[["Store"], Callable[[Dispatch], Dispatch]]


class Recorder(Protocol):
    """A history kept in step with the store (the devtools), called under its lock."""

    def live_state(self, current: State) -> State:
        """The state a new action applies to (the present, even while viewing the past)."""

    def latest_state(self) -> State:
        """The state after the newest action (the present, even while viewing the past)."""

    def next_index(self) -> int:
        """The index the next recorded action will get."""

    def record(self, action: Action, state: State) -> None:
        """Remember ``action`` and the state it produced."""


class Transaction:
    """An action built from the state inside the store's lock (see :meth:`Store.transact`)."""

    __slots__ = ("build",)

    def __init__(self, build: Callable[[State, int], Action]) -> None:
        self.build = build


class Store:
    """Holds the state; every change goes through :meth:`dispatch` or :meth:`transact`.

    ``dispatch`` accepts an :class:`Action` or a thunk (any callable, called as
    ``thunk(dispatch, get_state)``; its return value is returned).

    Parameters
    ----------
    reducer : callable
        ``(state, action) -> state``; must be pure.
    state : State
        The initial state.
    middleware : sequence of callables
        Redux-style ``mw(store)(next)(action)``; the first wraps all the others. They
        see :class:`Transaction` objects as well as actions.
    recorder : Recorder, optional
        Called under the lock for every reduced action.
    """

    def __init__(
        self,
        reducer: Reducer,
        state: State,
        middleware: tuple[Middleware, ...] = (),
        recorder: Recorder | None = None,
    ) -> None:
        self._reducer = reducer
        self._state = state
        self._lock = threading.RLock()
        self._listeners: dict[int, Listener] = {}
        self._next_token = 0
        self._action_count = 0
        self._recorder = recorder
        dispatch: Dispatch = self._base_dispatch
        for mw in reversed(middleware):
            dispatch = mw(self)(dispatch)
        self._dispatch_chain = dispatch

    @property
    def lock(self) -> threading.RLock:
        """The lock every state change holds."""
        return self._lock

    @property
    def action_count(self) -> int:
        """How many actions have been reduced since the store was created."""
        return self._action_count

    def get_state(self) -> State:
        """The current state (an immutable object: safe to keep, never mutated)."""
        return self._state

    def present_state(self) -> State:
        """The state after the newest action, even while the devtools show the past.

        Effects read this: a run in flight lives in the present, and a jump made while
        it runs must not make it read a state in which it does not exist yet.
        """
        with self._lock:
            recorder = self._recorder
            return self._state if recorder is None else recorder.latest_state()

    def dispatch(self, action: Any) -> Any:
        """Dispatch an action or a thunk; see the class docstring."""
        if isinstance(action, Action | Transaction):
            return self._dispatch_chain(action)
        if callable(action):
            return action(self.dispatch, self.get_state)
        raise TypeError(f"dispatch() takes an Action or a thunk, not {type(action).__name__}")

    def transact(self, build: Callable[[State, int], Action]) -> Action:
        """Build an action from the live state and reduce it, atomically.

        ``build(state, index)`` runs under the store lock with the state the action will
        apply to and the action's history index; whatever it returns is reduced before
        any other change can land, so an action that snapshots the state (a send) can
        never be built from a value that is already stale. If ``build`` raises, nothing
        changes and the error propagates.
        """
        result = self._dispatch_chain(Transaction(build))
        assert isinstance(result, Action)
        return result

    def replace_state(self, state: State) -> None:
        """Swap in a whole state (devtools jump/import) and notify listeners."""
        with self._lock:
            self._state = state
        self._notify()

    def swap_state(self, state: State) -> None:
        """Swap in a whole state without notifying; the caller holds :attr:`lock` and
        calls :meth:`notify` once it has released it."""
        with self._lock:
            self._state = state

    def notify(self) -> None:
        """Call every listener now (never call this while holding :attr:`lock`)."""
        self._notify()

    def _base_dispatch(self, action: Any) -> Any:
        if not isinstance(action, Action | Transaction):
            return self.dispatch(action)
        changed = False
        try:
            with self._lock:
                old = self._state
                recorder = self._recorder
                base = old if recorder is None else recorder.live_state(old)
                # The recorder has left the past: the store follows at once, so a build
                # that refuses below cannot leave it showing the past (and the next
                # send rendering from it) while the devtools says "live".
                self._state = base
                changed = base is not old
                if isinstance(action, Transaction):
                    index = self._action_count if recorder is None else recorder.next_index()
                    action = action.build(base, index)
                    if not isinstance(action, Action):
                        raise TypeError("a transaction must build an Action")
                new = self._reducer(base, action)
                self._state = new
                self._action_count += 1
                if recorder is not None:
                    recorder.record(action, new)
                changed = new is not old
        finally:
            if changed:
                self._notify()
        return action

    def _notify(self) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener()
            except Exception:  # a broken view must not break the store
                log.exception("promptstate: a store listener raised")

    @property
    def listener_count(self) -> int:
        """How many listeners are subscribed (views unsubscribe when closed)."""
        with self._lock:
            return len(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` after every state change; returns ``unsubscribe``."""
        with self._lock:
            token = self._next_token
            self._next_token += 1
            self._listeners[token] = listener

        def unsubscribe() -> None:
            with self._lock:
                self._listeners.pop(token, None)

        return unsubscribe
