"""The ``sweeps`` slice: how far each sweep has got."""

from __future__ import annotations

from promptstate.core.actions import SweepCellFinished, SweepStarted
from promptstate.core.reducers._registry import on, replace
from promptstate.core.state import State, SweepState

__all__: list[str] = []


@on(SweepStarted)
def _started(state: State, a: SweepStarted) -> State:
    sweep = SweepState(prompt_id=a.prompt_id, total=a.total)
    return replace(state, sweeps=state.sweeps.set(a.sweep_id, sweep))


@on(SweepCellFinished)
def _cell(state: State, a: SweepCellFinished) -> State:
    sweep = state.sweeps.get(a.sweep_id)
    if sweep is None or a.index in sweep.cells or not 0 <= a.index < sweep.total:
        return state  # each cell ends once
    sweep = replace(
        sweep,
        done=sweep.done + 1,
        errors=sweep.errors + (a.status == "error"),
        cancelled=sweep.cancelled + (a.status == "cancelled"),
        cells=sweep.cells.set(a.index, a.status),
    )
    return replace(state, sweeps=state.sweeps.set(a.sweep_id, sweep))
