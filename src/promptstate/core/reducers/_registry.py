"""The handler table the slices register into, and a fast ``replace``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from promptstate.core.actions import Action
from promptstate.core.state import InstanceState, State

__all__ = ["HANDLERS", "on", "replace", "update_instance"]

_T = TypeVar("_T")
_A = TypeVar("_A", bound=Action)

HANDLERS: dict[type[Action], Callable[[State, Any], State]] = {}


def on(
    action_type: type[_A],
) -> Callable[[Callable[[State, _A], State]], Callable[[State, _A], State]]:
    """Register the reducer of one action class."""

    def deco(fn: Callable[[State, _A], State]) -> Callable[[State, _A], State]:
        if action_type in HANDLERS:
            raise RuntimeError(f"two reducers for {action_type.type}")
        HANDLERS[action_type] = fn
        return fn

    return deco


def replace(obj: _T, **changes: Any) -> _T:
    """``dataclasses.replace`` for the state's frozen dataclasses, ~5x faster.

    The generic one walks ``fields()`` and re-runs the frozen ``__init__`` (one
    ``object.__setattr__`` per field) on every call, and reducers call it several times
    per action. This copies the instance dict; unknown field names still raise.
    """
    known = obj.__dataclass_fields__.keys()  # type: ignore[attr-defined]
    if not changes.keys() <= known:  # a subset test builds no set (half the cost)
        unknown = changes.keys() - known
        raise TypeError(f"{type(obj).__name__} has no field(s) {sorted(unknown)}")
    new = object.__new__(type(obj))
    d = new.__dict__
    d.update(obj.__dict__)
    d.update(changes)
    return new


def update_instance(state: State, iid: str, **changes: Any) -> State:
    """``state`` with instance ``iid`` changed (unchanged if it does not exist)."""
    inst: InstanceState | None = state.instances.get(iid)
    if inst is None:
        return state
    return replace(state, instances=state.instances.set(iid, replace(inst, **changes)))
