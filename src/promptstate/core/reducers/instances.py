"""The ``instances`` slice: live uses of a prompt, their values and conversations."""

from __future__ import annotations

import immutables

from promptstate.core.actions import (
    HistoryCleared,
    InstanceClosed,
    InstanceRestored,
    InstanceStarted,
    ModelSet,
    VariableSet,
    VariablesSet,
    VariableUnset,
)
from promptstate.core.reducers._registry import on, replace, update_instance
from promptstate.core.state import InstanceState, State
from promptstate.models.run import TERMINAL_RUN_STATUSES

__all__ = ["apply_values"]


@on(InstanceStarted)
def _started(state: State, a: InstanceStarted) -> State:
    values = immutables.Map(a.values)
    inst = InstanceState(
        id=a.instance_id,
        prompt_id=a.prompt_id,
        prompt_version=a.prompt_version,
        model=a.model,
        values=values,
        given=frozenset(values),
        history=(),
        status="idle",
        current_request_id=None,
        last_run_id=None,
        track_in_runs=a.track_in_runs,
        created_at=a.at,
    )
    order = state.instance_order
    next_order = state.next_order
    if a.instance_id not in order:
        order = order.set(a.instance_id, next_order)
        next_order += 1
    return replace(
        state,
        instances=state.instances.set(a.instance_id, inst),
        instance_order=order,
        next_order=next_order,
    )


def apply_values(state: State, iid: str, values: dict[str, str]) -> State:
    """``state`` with the instance's own values updated (identity if nothing changes)."""
    inst = state.instances.get(iid)
    if inst is None:
        return state
    changed = {k: v for k, v in values.items() if inst.values.get(k) != v}
    if not changed:
        return state
    return update_instance(state, iid, values=inst.values.update(changed))


@on(VariableSet)
def _variable_set(state: State, a: VariableSet) -> State:
    return apply_values(state, a.instance_id, {a.name: a.value})


@on(VariablesSet)
def _variables_set(state: State, a: VariablesSet) -> State:
    return apply_values(state, a.instance_id, a.values)


@on(VariableUnset)
def _variable_unset(state: State, a: VariableUnset) -> State:
    inst = state.instances.get(a.instance_id)
    if inst is None or a.name not in inst.values:
        return state
    return update_instance(state, inst.id, values=inst.values.delete(a.name))


@on(ModelSet)
def _model_set(state: State, a: ModelSet) -> State:
    return update_instance(state, a.instance_id, model=a.model)


@on(HistoryCleared)
def _history_cleared(state: State, a: HistoryCleared) -> State:
    return update_instance(state, a.instance_id, history=())


@on(InstanceRestored)
def _restored(state: State, a: InstanceRestored) -> State:
    inst = state.instances.get(a.instance_id)
    if inst is None or inst.current_request_id is not None:
        return state  # never rewrite an instance while its run is in flight
    values = immutables.Map(a.values)
    return update_instance(
        state,
        inst.id,
        prompt_version=a.prompt_version,
        values=values,
        given=frozenset(values),
        history=a.history,
        model=a.model,
        status="idle",
        error=None,
    )


@on(InstanceClosed)
def _closed(state: State, a: InstanceClosed) -> State:
    inst = state.instances.get(a.instance_id)
    if inst is None:
        return state
    # an instance holds at most its run in flight and its latest finished run in the
    # store: drop the finished one (no scan of every run, so close stays O(log n))
    runs = state.runs
    last = runs.get(inst.last_run_id) if inst.last_run_id else None
    if last is not None and last.status in TERMINAL_RUN_STATUSES:
        runs = runs.delete(last.run_id)
    return replace(
        state,
        instances=state.instances.delete(a.instance_id),
        instance_order=state.instance_order.delete(a.instance_id),
        runs=runs,
    )
