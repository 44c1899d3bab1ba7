"""Pure reducers: ``(state, action) -> state``, one module per slice.

No I/O, no clock, no random ids: everything an effect learned arrives in the action, so
replaying the recorded actions from the same base state reproduces the same state.
An action no slice handles returns the state unchanged (identity), as in Redux.
"""

from __future__ import annotations

from promptstate.core.actions import Action
from promptstate.core.reducers import instances, prompts, runs, scoped, sweeps
from promptstate.core.reducers._registry import HANDLERS
from promptstate.core.state import State

__all__ = ["reduce"]

# importing the slices registers their handlers
_SLICES = (instances, prompts, runs, scoped, sweeps)


def reduce(state: State, action: Action) -> State:
    """Apply one action. Returns ``state`` itself when the action changes nothing."""
    handler = HANDLERS.get(type(action))
    if handler is None:
        return state
    return handler(state, action)
