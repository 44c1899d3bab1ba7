"""The ``scoped`` slice: user / org / project variables."""

from __future__ import annotations

import immutables

from promptstate.core.actions import (
    ScopedFetchFulfilled,
    ScopedFetchPending,
    ScopedFetchRejected,
    ScopedVariableSet,
)
from promptstate.core.reducers._registry import on, replace
from promptstate.core.state import State

__all__: list[str] = []


@on(ScopedFetchPending)
def _pending(state: State, a: ScopedFetchPending) -> State:
    s = replace(
        state.scoped,
        user_id=a.user_id,
        org_id=a.org_id,
        project_id=a.project_id,
        status="loading",
        request_id=a.request_id,
        error=None,
    )
    return replace(state, scoped=s)


@on(ScopedFetchFulfilled)
def _fulfilled(state: State, a: ScopedFetchFulfilled) -> State:
    s = state.scoped
    if a.request_id != s.request_id:
        return state  # a stale reply: a newer fetch superseded it
    s = replace(
        s,
        user=immutables.Map(a.user),
        org=immutables.Map(a.org),
        project=immutables.Map(a.project),
        status="loaded",
    )
    return replace(state, scoped=s)


@on(ScopedFetchRejected)
def _rejected(state: State, a: ScopedFetchRejected) -> State:
    s = state.scoped
    if a.request_id != s.request_id:
        return state
    return replace(state, scoped=replace(s, status="error", error=a.error))


@on(ScopedVariableSet)
def _set(state: State, a: ScopedVariableSet) -> State:
    if a.scope not in ("user", "org", "project"):
        return state
    layer: immutables.Map[str, str] = getattr(state.scoped, a.scope)
    if a.value is None:
        if a.name not in layer:
            return state
        layer = layer.delete(a.name)
    else:
        layer = layer.set(a.name, a.value)
    return replace(state, scoped=replace(state.scoped, **{a.scope: layer}))
