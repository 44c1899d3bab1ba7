"""The ``sweeps`` slice: how far each sweep (or eval) has got.

Counts only (``sent``, ``done``, ``errors``, ``cancelled``), updated once per batch of
cells; each cell's status lives on its job object. A finished sweep leaves the slice
(``SweepFinished``); its job keeps the final counts.
"""

from __future__ import annotations

from promptstate.core.actions import SweepCellsFinished, SweepCellsSent, SweepFinished, SweepStarted
from promptstate.core.reducers._registry import on, replace
from promptstate.core.state import State, SweepState

__all__: list[str] = []


@on(SweepStarted)
def _started(state: State, a: SweepStarted) -> State:
    sweep = SweepState(prompt_id=a.prompt_id, total=a.total)
    return replace(state, sweeps=state.sweeps.set(a.sweep_id, sweep))


@on(SweepCellsSent)
def _sent(state: State, a: SweepCellsSent) -> State:
    sweep = state.sweeps.get(a.sweep_id)
    if sweep is None:
        return state
    sweep = replace(sweep, sent=min(sweep.total, sweep.sent + len(a.cells)))
    return replace(state, sweeps=state.sweeps.set(a.sweep_id, sweep))


@on(SweepCellsFinished)
def _finished(state: State, a: SweepCellsFinished) -> State:
    sweep = state.sweeps.get(a.sweep_id)
    if sweep is None:
        return state
    ends = [c for c in a.cells if 0 <= c.index < sweep.total][: sweep.total - sweep.done]
    sweep = replace(
        sweep,
        done=sweep.done + len(ends),
        errors=sweep.errors + sum(c.status == "error" for c in ends),
        cancelled=sweep.cancelled + sum(c.status == "cancelled" for c in ends),
    )
    return replace(state, sweeps=state.sweeps.set(a.sweep_id, sweep))


@on(SweepFinished)
def _ended(state: State, a: SweepFinished) -> State:
    # a long session runs many sweeps: a finished one must not stay in every state
    if a.sweep_id not in state.sweeps:
        return state
    return replace(state, sweeps=state.sweeps.delete(a.sweep_id))
