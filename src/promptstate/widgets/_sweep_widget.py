"""``SweepGrid(sweep)``: a sweep's results as a grid, variable sets down, models across."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import traitlets

from promptstate.engine.sweep import Sweep, SweepCell
from promptstate.widgets._assets import module
from promptstate.widgets._binding import MIN_SYNC_INTERVAL
from promptstate.widgets._panel import PanelWidget, json_safe, run_detail_payload, truncate
from promptstate.widgets._panel_messages import SweepCellPayload, opt_int

__all__ = ["SweepGrid", "sweep_counts"]

# A grid cell shows the start of the reply; the detail pane shows all of it.
_CELL_TEXT = 240
_VALUE_TEXT = 200
# Large grids sync less often: every sync carries the whole grid.
_LARGE_GRID = 200
_LARGE_GRID_INTERVAL = 0.25


def sweep_counts(cells: list[SweepCellPayload]) -> dict[str, int]:
    """The header's counts: ``done`` is cells that succeeded; a cancelled or failed cell
    is counted as such, never as done; ``ended`` is every cell that finished."""
    by = {"success": 0, "error": 0, "cancelled": 0, "running": 0, "queued": 0, "not_run": 0}
    for c in cells:
        key = c["status"] if c["status"] in by else "error"  # an unknown end is a failure
        by[key] += 1
    return {
        "total": len(cells),
        "done": by["success"],
        "errors": by["error"],
        "cancelled": by["cancelled"],
        "running": by["running"],
        "queued": by["queued"],
        "not_run": by["not_run"],
        "ended": by["success"] + by["error"] + by["cancelled"],
    }


class SweepGrid(PanelWidget):
    """A sweep's results, live: variable sets down, models across, a reply per cell.

    Cells fill in as runs finish (updates are coalesced), coloured by status; click a
    cell for the full run (messages, variables with sources, tokens, latency, cost,
    error). **Cancel** stops the sweep: queued cells end ``cancelled``. Displaying a
    sweep that has not started yet (made outside a running loop) starts it.

    Parameters
    ----------
    sweep : promptstate Sweep
        What ``session.sweep(...)`` returned.

    Examples
    --------
    >>> sw = session.sweep("summarize", {"text": ["a", "b"]}, models=["echo"])  # doctest: +SKIP
    >>> ps.widgets.SweepGrid(sw)  # doctest: +SKIP
    """

    _esm = module("sweep.js")

    prompt_id = traitlets.Unicode("").tag(sync=True)
    sweep_id = traitlets.Unicode("").tag(sync=True)
    models = traitlets.List(traitlets.Unicode()).tag(sync=True)
    variable_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    repeat = traitlets.Int(1).tag(sync=True)
    cells = traitlets.List(traitlets.Dict()).tag(sync=True)
    counts = traitlets.Dict().tag(sync=True)
    finished = traitlets.Bool(False).tag(sync=True)
    selected = traitlets.Int(None, allow_none=True).tag(sync=True)
    detail = traitlets.Dict().tag(sync=True)

    def __init__(self, sweep: Sweep, **kwargs: Any) -> None:
        if not isinstance(sweep, Sweep):
            raise TypeError(
                f"SweepGrid() takes what session.sweep(...) returns, not {type(sweep).__name__}"
            )
        self._sweep = sweep
        n_models = max(1, len(sweep.models))
        repeat = 1 + max((c.repeat for c in sweep.cells), default=0)
        self._per_row = n_models * repeat
        rows = [
            {
                "index": r,
                "variables": {
                    str(k): truncate(str(v), _VALUE_TEXT)
                    for k, v in sweep.cells[r * self._per_row].variables.items()
                },
            }
            for r in range(len(sweep.cells) // self._per_row)
        ]
        self._finished = False
        self._repeat = repeat
        self._seen_progress: object = None
        super().__init__(
            sweep.session,
            prompt_id=sweep.prompt_id,
            sweep_id=sweep.sweep_id,
            models=list(sweep.models),
            variable_names=list(sweep.variable_names),
            rows=rows,
            repeat=repeat,
            sync_interval=(
                _LARGE_GRID_INTERVAL if len(sweep.cells) > _LARGE_GRID else MIN_SYNC_INTERVAL
            ),
            **self._collect(),
            **kwargs,
        )
        self._watch_finish()

    def _store_changed(self) -> None:
        # every dispatch: refresh only when this sweep's progress changed (a batch of
        # cells sent or ended)
        progress = self._sweep.session.store.get_state().sweeps.get(self._sweep.sweep_id)
        if progress is not self._seen_progress:
            self._seen_progress = progress
            self.request_refresh()

    @property
    def sweep(self) -> Sweep:
        """The sweep shown."""
        return self._sweep

    def _watch_finish(self) -> None:
        # The end of the whole sweep sets the grid's "finished" state.
        if self._coalescer.loop is None:
            return
        try:
            fut = self.spawn(self._sweep.wait())
        except RuntimeError:
            return
        fut.add_done_callback(lambda _f: self.call_on_loop(self._on_finished))

    def _on_finished(self) -> None:
        self._finished = True
        self._refresh()

    # -- sweep -> traits ------------------------------------------------------------------------

    def _in_flight(self) -> dict[int, str]:
        """Cell index -> ``running`` for the cells whose call is in flight."""
        return dict.fromkeys(self._sweep.in_flight, "running")

    def _cell_payload(self, cell: SweepCell, flight: Mapping[int, str]) -> SweepCellPayload:
        res = cell.result
        if res is not None:
            status = res.status
        elif cell.status not in ("pending", "not_run"):
            status = cell.status  # ended without a run (e.g. a missing variable)
        elif self._finished:
            status = "not_run"
        else:
            # waiting for a concurrency slot counts as queued, like a queued run
            status = flight.get(cell.index, "queued")
        return SweepCellPayload(
            index=cell.index,
            row=cell.index // self._per_row,
            col=(cell.index % self._per_row) // self._repeat,
            repeat=cell.repeat,
            status=status,
            run_id=None if res is None else res.run_id,
            response=None if res is None else truncate(res.response or "", _CELL_TEXT),
            error=cell.error if res is None else res.error,
            latency_ms=None if res is None else res.latency_ms,
            output_tokens=None if res is None else res.output_tokens,
        )

    def _refresh(self) -> None:
        self.apply(self._collect())

    def _collect(self) -> dict[str, Any]:
        sw = self._sweep
        flight = self._in_flight()
        cells = [self._cell_payload(c, flight) for c in list(sw.cells)]
        return {"cells": cells, "counts": sweep_counts(cells), "finished": self._finished}

    # -- Python API --------------------------------------------------------------------------------

    def select(self, index: int | None) -> None:
        """Show cell ``index``'s run in the detail pane (``None`` closes it)."""
        if index is None:
            self.apply({"selected": None, "detail": {}})
            return
        if not 0 <= index < len(self._sweep.cells):
            raise IndexError(f"no cell {index} in this sweep ({len(self._sweep.cells)} cells)")
        cell = self._sweep.cells[index]
        info = {
            "index": index,
            "model": cell.model,
            "repeat": cell.repeat,
            "variables": {str(k): json_safe(v) for k, v in cell.variables.items()},
        }
        self.apply({"selected": index})
        result = cell.result
        if result is None:
            if cell.status not in ("pending", "not_run"):
                status = cell.status  # ended without a run (e.g. a missing variable)
            elif self._finished:
                status = "not_run"
            else:
                status = self._in_flight().get(index, "queued")
            self.apply({"detail": {"cell": info, "status": status, "error": cell.error}})
            return
        run_id = result.run_id

        def fetch() -> dict[str, Any]:
            return {**run_detail_payload(self._session.runs.get(run_id)), "cell": info}

        def show(detail: dict[str, Any]) -> None:
            if self.selected == index:
                self.apply({"detail": detail})

        self.read_soon(fetch, show)

    # -- front end -> kernel ---------------------------------------------------------------------

    def _handlers(self) -> Mapping[str, Callable[[Mapping[str, Any]], None]]:
        return {"select": self._on_select, "cancel": self._on_cancel}

    def _on_select(self, msg: Mapping[str, Any]) -> None:
        index = opt_int(msg, "index")
        self.call_on_loop(lambda: self.select(index))

    def _on_cancel(self, _msg: Mapping[str, Any]) -> None:
        def cancel() -> None:  # asyncio tasks are cancelled on their own loop
            self._sweep.cancel()
            self._set_notice("cancelling: queued cells end 'cancelled'")

        self.call_on_loop(cancel)

    # -- lifecycle ---------------------------------------------------------------------------------

    def __repr__(self) -> str:
        c = self.counts
        return f"SweepGrid(cells={c.get('total')}, done={c.get('done')}, sweep={self.sweep_id!r})"
