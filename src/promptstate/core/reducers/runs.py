"""The ``runs`` slice: runs in flight and each instance's latest finished run."""

from __future__ import annotations

from typing import Any

import immutables

from promptstate.core.actions import (
    AttemptStarted,
    ChunkReceived,
    ExecuteFulfilled,
    ExecutePending,
    ExecuteRejected,
    ExecuteStarted,
)
from promptstate.core.reducers._registry import on, replace
from promptstate.core.reducers.instances import apply_values
from promptstate.core.state import RunState, State
from promptstate.models.run import TERMINAL_RUN_STATUSES
from promptstate.models.values import ChatMessage

__all__: list[str] = []


@on(ExecutePending)
def _pending(state: State, a: ExecutePending) -> State:
    inst = state.instances.get(a.instance_id)
    if inst is not None and inst.current_request_id is not None:
        return state  # the engine checks this in the same transaction; a replay keeps it
    # the click's unsynced edits and the request rendered from them land together
    state = apply_values(state, a.instance_id, a.edits)
    run = RunState(
        run_id=a.request_id,
        instance_id=a.instance_id,
        prompt_id=a.prompt_id,
        prompt_version=a.prompt_version,
        provider=a.provider,
        model=a.model,
        status="queued",
        variables=a.variables,
        messages=a.messages,
        user_content=a.user_content,
        started_at=a.at,
        settings=immutables.Map(a.settings),
        cache_key=a.cache_key,
        action_index=a.action_index,
        state_hash=a.state_hash,
        sweep_id=a.sweep_id,
        session_id=a.session_id,
        tracked=a.tracked,
    )
    runs = state.runs.set(a.request_id, run)
    inst = state.instances.get(a.instance_id)
    if inst is None:
        return replace(state, runs=runs)
    queued = replace(inst, status="queued", current_request_id=a.request_id, error=None)
    # one new State per action: the run and its instance change together
    return replace(state, runs=runs, instances=state.instances.set(a.instance_id, queued))


def _update_run(state: State, run_id: str, **changes: Any) -> tuple[State, RunState | None]:
    run = state.runs.get(run_id)
    if run is None or run.status in TERMINAL_RUN_STATUSES:
        return state, None  # a late event for a run that already ended is ignored
    new = replace(run, **changes)
    return replace(state, runs=state.runs.set(run.run_id, new)), new


@on(ExecuteStarted)
def _started(state: State, a: ExecuteStarted) -> State:
    run = state.runs.get(a.request_id)
    if run is None or run.status in TERMINAL_RUN_STATUSES:
        return state  # a late event for a run that already ended is ignored
    runs = state.runs.set(run.run_id, replace(run, status="running", running_at=a.at))
    inst = state.instances.get(run.instance_id)
    if inst is None or inst.current_request_id != run.run_id:
        return replace(state, runs=runs)
    running = replace(inst, status="running")
    return replace(state, runs=runs, instances=state.instances.set(inst.id, running))


@on(AttemptStarted)
def _attempt(state: State, a: AttemptStarted) -> State:
    return _update_run(state, a.request_id, attempts=a.attempt)[0]


@on(ChunkReceived)
def _chunk(state: State, a: ChunkReceived) -> State:
    run = state.runs.get(a.request_id)
    if run is None or run.status in TERMINAL_RUN_STATUSES:
        return state
    changes: dict[str, Any] = {"response": run.response + a.text, "chunks": run.chunks + a.n}
    if run.ttft_ms is None and a.ttft_ms is not None:
        changes["ttft_ms"] = a.ttft_ms
    return _update_run(state, a.request_id, **changes)[0]


def _finish(state: State, a: ExecuteFulfilled | ExecuteRejected, status: str) -> State:
    run = state.runs.get(a.request_id)
    if run is None or run.status in TERMINAL_RUN_STATUSES:
        return state
    error = a.error if isinstance(a, ExecuteRejected) else None
    new = replace(
        run,
        status=status,
        response=a.response or run.response,
        error=error,
        error_type=a.error_type if isinstance(a, ExecuteRejected) else None,
        attempts=a.attempts or run.attempts,
        input_tokens=a.input_tokens,
        output_tokens=a.output_tokens,
        latency_ms=a.latency_ms,
        ttft_ms=a.ttft_ms if a.ttft_ms is not None else run.ttft_ms,
        finished_at=a.at,
        cost_usd=a.cost_usd,
        cache_hit=a.cache_hit if isinstance(a, ExecuteFulfilled) else False,
    )
    runs = state.runs.set(new.run_id, new)
    inst = state.instances.get(new.instance_id)
    if inst is None or inst.current_request_id != new.run_id:
        # the instance moved on (or closed): its view is not touched
        return replace(state, runs=runs)
    # Keep the store bounded: an instance keeps only its latest finished run here.
    if inst.last_run_id and inst.last_run_id != new.run_id and inst.last_run_id in runs:
        old = runs[inst.last_run_id]
        if old.status in TERMINAL_RUN_STATUSES:
            runs = runs.delete(inst.last_run_id)
    history = inst.history
    if status == "success":
        # the conversation is what was sent plus what came back, never re-rendered
        history = (*new.messages, ChatMessage("assistant", new.response, new.run_id))
    ended = replace(
        inst,
        status=status,
        current_request_id=None,
        last_run_id=new.run_id,
        history=history,
        error=new.error if status == "error" else None,
    )
    # one new State per action: the run and its instance change together
    return replace(state, runs=runs, instances=state.instances.set(inst.id, ended))


@on(ExecuteFulfilled)
def _fulfilled(state: State, a: ExecuteFulfilled) -> State:
    return _finish(state, a, "success")


@on(ExecuteRejected)
def _rejected(state: State, a: ExecuteRejected) -> State:
    return _finish(state, a, a.status if a.status in ("error", "cancelled") else "error")
