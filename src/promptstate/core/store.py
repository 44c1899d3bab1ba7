"""A small thread-safe Redux store: dispatch, get_state, subscribe, middleware, thunks."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from promptstate.core.state import Action, State

__all__ = ["Dispatch", "GetState", "Listener", "Middleware", "Reducer", "Store"]

Reducer = Callable[[State, Action], State]
GetState = Callable[[], State]
Dispatch = Callable[[Any], Any]
Listener = Callable[[], None]
# Middleware in Redux's curried shape: mw(store)(next_dispatch)(action) -> result
Middleware = Callable[["Store"], Callable[[Dispatch], Dispatch]]


class Store:
    """Holds the state; every change goes through :meth:`dispatch`.

    ``dispatch`` accepts an :class:`Action` (reduced under a lock, so dispatches from a
    widget's subshell thread and from the kernel's loop never interleave) or a thunk:
    any callable, called as ``thunk(dispatch, get_state)``; its return value (a coroutine
    for async thunks) is returned to the caller. Listeners run after the lock is released,
    on the dispatching thread, and should read ``get_state()`` rather than keep copies.

    Parameters
    ----------
    reducer : callable
        ``(state, action) -> state``; must be pure.
    state : State
        The initial state.
    middleware : sequence of callables
        Redux-style ``mw(store)(next)(action)``; the first wraps all the others.
    """

    def __init__(
        self, reducer: Reducer, state: State, middleware: tuple[Middleware, ...] = ()
    ) -> None:
        self._reducer = reducer
        self._state = state
        self._lock = threading.RLock()
        self._listeners: dict[int, Listener] = {}
        self._next_token = 0
        self._action_count = 0
        self.listener_errors: list[BaseException] = []
        dispatch: Dispatch = self._base_dispatch
        for mw in reversed(middleware):
            dispatch = mw(self)(dispatch)
        self._dispatch_chain = dispatch

    @property
    def lock(self) -> threading.RLock:
        """The lock every state change holds (history middleware shares it)."""
        return self._lock

    @property
    def action_count(self) -> int:
        """How many actions have been reduced since the store was created."""
        return self._action_count

    def get_state(self) -> State:
        """The current state (an immutable object: safe to keep, never stale-mutated)."""
        return self._state

    def dispatch(self, action: Any) -> Any:
        """Dispatch an action or a thunk; see the class docstring."""
        if isinstance(action, Action):
            return self._dispatch_chain(action)
        if callable(action):
            return action(self.dispatch, self.get_state)
        raise TypeError(f"dispatch() takes an Action or a thunk, not {type(action).__name__}")

    def replace_state(self, state: State) -> None:
        """Swap in a whole state (devtools jump/import) and notify listeners."""
        with self._lock:
            self._state = state
        self._notify()

    def _base_dispatch(self, action: Any) -> Any:
        if not isinstance(action, Action):
            return self.dispatch(action)
        with self._lock:
            old = self._state
            new = self._reducer(old, action)
            self._state = new
            self._action_count += 1
        if new is not old:
            self._notify()
        return action

    def _notify(self) -> None:
        for listener in list(self._listeners.values()):
            try:
                listener()
            except Exception as exc:  # a broken view must not break the store
                self.listener_errors.append(exc)
                del self.listener_errors[:-20]

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
