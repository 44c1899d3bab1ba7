"""Sweeps: one prompt over many variable sets and models, concurrently, all in the run log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptstate.core.actions import InstanceClosed, SweepCellFinished, SweepStarted
from promptstate.core.state import SweepState
from promptstate.engine.execute import execute
from promptstate.engine.job import Job
from promptstate.engine.ports import Runtime
from promptstate.engine.prompts import fetch_prompt, start_instance
from promptstate.engine.send import begin_send, check_name, clean_values
from promptstate.errors import PromptStateError, VariableError
from promptstate.models.provider import validate_settings
from promptstate.models.redact import redact
from promptstate.models.run import RunResult

__all__ = ["Sweep", "SweepCell", "expand_variables"]

log = logging.getLogger("promptstate")

Query = Callable[[str, list[Any]], Any]


def expand_variables(
    variables: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]] | None,
) -> list[dict[str, str]]:
    """Variable dicts: a list passes through; ``{name: [values]}`` is a cartesian product.

    Names and values are validated here (typed errors), before anything runs.
    """
    if variables is None:
        return [{}]
    if isinstance(variables, Mapping):
        names = [check_name(n) for n in variables]
        for n in names:
            vals = variables[n]
            if isinstance(vals, str | bytes) or not isinstance(vals, Iterable):
                raise VariableError(f"sweep variable {n!r}: expected a list of values")
        rows: Iterable[dict[str, object]] = (
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*variables.values())
        )
    elif isinstance(variables, str | bytes) or not isinstance(variables, Iterable):
        raise VariableError("sweep variables must be a list of dicts or a dict of lists")
    else:
        rows = variables  # type: ignore[assignment]
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise VariableError(
                f"sweep variables[{i}]: expected a mapping, got {type(row).__name__}"
            )
        out.append(clean_values(row))
    return out


@dataclass(frozen=True)
class SweepCell:
    """One (variables, model, repeat) cell of a sweep and, once done, its result.

    ``status`` is ``pending`` until the cell ends, then the run's status (``success``,
    ``error``, ``cancelled``), or ``error`` with ``result=None`` when the cell could not
    send at all (e.g. a missing variable; ``error`` says why).
    """

    index: int
    variables: dict[str, str]
    model: str
    repeat: int
    result: RunResult | None = None
    status: str = "pending"
    error: str | None = None


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VariableError(f"{name} must be an integer >= 1, not {value!r}")
    return value


class Sweep(Job):
    """A running (or finished) sweep; ``await`` it for the finished sweep.

    Created by ``Session.sweep``. Starts at once when created inside a running loop (a
    notebook cell), else on first ``await``. Failures never stop the other cells;
    :meth:`cancel` stops queued and running cells, which end ``cancelled``. Progress is
    in the store (``state.sweeps[sweep_id]``), so views follow it with the store's one
    subscription mechanism.
    """

    def __init__(
        self,
        rt: Runtime,
        query: Query,
        prompt_id: str,
        variables: list[dict[str, str]],
        models: list[str],
        *,
        concurrency: int,
        repeat: int,
        progress: bool,
        settings: Mapping[str, Any] | None,
    ) -> None:
        self.concurrency = _positive_int("concurrency", concurrency)
        self.repeat = _positive_int("repeat", repeat)
        self.settings = validate_settings(settings or {})
        fetch_prompt(rt, prompt_id)
        # validate every cell before anything runs: a typo fails fast, nothing logged
        for m in models:
            rt.providers.resolve(m)
        self._rt = rt
        self._query = query
        self.prompt_id = prompt_id
        self.sweep_id = rt.new_id()
        self.cells: list[SweepCell] = [
            SweepCell(i, v, m, r)
            for i, (v, m, r) in enumerate(
                (v, m, r) for v in variables for m in models for r in range(self.repeat)
            )
        ]
        self.variable_names = list(dict.fromkeys(k for v in variables for k in v))
        self.models = models
        self._progress_enabled = progress
        self._init_job()
        # the facade that made it (views need its loop); set by Session.sweep
        self.session: Any = None
        rt.store.dispatch(
            SweepStarted(sweep_id=self.sweep_id, prompt_id=prompt_id, total=len(self.cells))
        )
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._start()

    # -- progress, from the store ----------------------------------------------------------

    def _progress(self) -> SweepState:
        return self._rt.store.get_state().sweeps[self.sweep_id]

    @property
    def done(self) -> int:
        """Cells that have ended (any status)."""
        return self._progress().done

    @property
    def errors(self) -> int:
        """Cells that ended ``error``."""
        return self._progress().errors

    @property
    def cancelled(self) -> int:
        """Cells that ended ``cancelled``."""
        return self._progress().cancelled

    # -- running -----------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[SweepCell], None]) -> Callable[[], None]:
        """Call ``listener(cell)`` once for each cell as it finishes (SweepGrid uses it).

        Built on ``store.subscribe``: the listener runs on the dispatching thread, outside
        the store lock.
        """
        seen: set[int] = set()
        last: list[Any] = [None]

        def on_change() -> None:
            sweep = self._rt.store.get_state().sweeps.get(self.sweep_id)
            if sweep is None or sweep is last[0]:
                return
            last[0] = sweep
            for index in sweep.cells:
                if index not in seen and self.cells[index].status != "pending":
                    seen.add(index)
                    listener(self.cells[index])

        return self._rt.store.subscribe(on_change)

    async def _run(self) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        bar = self._progress_bar()
        loop = asyncio.get_running_loop()
        self._cell_tasks = [loop.create_task(self._run_cell(c, sem, bar)) for c in self.cells]
        try:
            await asyncio.gather(*self._cell_tasks, return_exceptions=True)
        finally:
            if bar is not None:
                bar.close()

    async def _run_cell(self, cell: SweepCell, sem: asyncio.Semaphore, bar: Any) -> None:
        rt = self._rt
        iid: str | None = None
        result: RunResult | None = None
        try:
            async with sem:
                # started only once it holds a slot: at most `concurrency` live
                # instances, so starting and closing stay O(concurrency), not O(cells)
                iid = start_instance(rt, self.prompt_id, cell.variables)
                result = await self._send(iid, cell.model, self._cancel_requested)
        except asyncio.CancelledError:
            if result is None and iid is None:
                # never started: still leave a 'cancelled' row, as promised
                with contextlib.suppress(PromptStateError):
                    iid = start_instance(rt, self.prompt_id, cell.variables)
                    result = await self._send(iid, cell.model, True)
            if result is None and iid is not None:
                last = rt.store.get_state().instances.get(iid)
                run = (
                    rt.store.get_state().runs.get(last.last_run_id)
                    if last and last.last_run_id
                    else None
                )
                if run is not None:
                    from promptstate.engine.execute import run_result

                    result = run_result(run)
            self._finish_cell(cell, bar, result, "cancelled", "cancelled")
            return
        except PromptStateError as exc:
            rt.task_errors.append(exc)
            del rt.task_errors[:-50]
            self._finish_cell(cell, bar, None, "error", redact(f"{type(exc).__name__}: {exc}"))
            return
        finally:
            if iid is not None:
                rt.store.dispatch(InstanceClosed(instance_id=iid))
        assert result is not None
        self._finish_cell(cell, bar, result, result.status, result.error)

    def _finish_cell(
        self, cell: SweepCell, bar: Any, result: RunResult | None, status: str, error: str | None
    ) -> None:
        done = SweepCell(cell.index, cell.variables, cell.model, cell.repeat, result, status, error)
        self.cells[cell.index] = done
        self._rt.store.dispatch(
            SweepCellFinished(
                sweep_id=self.sweep_id,
                index=cell.index,
                status=status,
                run_id=None if result is None else result.run_id,
                error=error,
            )
        )
        self._update_bar(bar)

    async def _send(self, instance_id: str, model: str, cancelled: bool) -> RunResult:
        prepared = begin_send(
            self._rt,
            instance_id,
            None,
            model=model,
            settings=self.settings or None,
            sweep_id=self.sweep_id,
        )
        # the sweep's concurrency is the cap for its cells, whatever the provider's own
        return await execute(
            self._rt,
            prepared,
            precancelled=cancelled or self._cancel_requested,
            concurrency=self.concurrency,
        )

    # -- progress bar --------------------------------------------------------------------------

    def _progress_bar(self) -> Any:
        if not self._progress_enabled:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress is optional
            return None
        return tqdm(total=len(self.cells), desc=f"sweep {self.prompt_id}", unit="run", leave=True)

    def _update_bar(self, bar: Any) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix(errors=self.errors, cancelled=self.cancelled, refresh=False)

    # -- results -------------------------------------------------------------------------------

    @property
    def results(self) -> list[RunResult | None]:
        """One entry per cell (None while a cell is not done)."""
        return [c.result for c in self.cells]

    def relation(self) -> Any:
        """A DuckDB relation: one row per run, variables as columns."""
        # names are checked identifiers, and are still bound as parameters / quoted:
        # nothing from a CSV header reaches the SQL text unquoted
        params: list[Any] = []
        cols = []
        for n in self.variable_names:
            cols.append(f"json_extract_string(variables, ?) AS {_ident(n)}")
            params.append(f'$."{n}".value')
        sql = (
            "SELECT run_id, "
            + (", ".join(cols) + ", " if cols else "")
            + "provider, model, status, response, error, input_tokens, output_tokens, "
            "latency_ms, ttft_ms, cost_usd, attempts, started_at FROM runs WHERE sweep_id = ? "
            "ORDER BY started_at, run_id"
        )
        return self._query(sql, [*params, self.sweep_id])

    def df(self) -> Any:
        """The :meth:`relation` as a pandas DataFrame (needs pandas)."""
        return self.relation().df()

    def __repr__(self) -> str:
        return (
            f"Sweep({self.prompt_id!r}, cells={len(self.cells)}, done={self.done}, "
            f"errors={self.errors}, cancelled={self.cancelled}, sweep_id={self.sweep_id!r})"
        )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
