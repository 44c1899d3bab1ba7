"""Sweeps: one prompt over many variable sets and models, concurrently, all in the run log."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptstate.engine.execute import RunResult, execute_message
from promptstate.errors import PromptStateError, VariableError

if TYPE_CHECKING:
    from promptstate.session.session import Session

__all__ = ["Sweep", "SweepCell", "expand_variables"]


def expand_variables(
    variables: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]] | None,
) -> list[dict[str, object]]:
    """Variable dicts: a list passes through; ``{name: [values]}`` is a cartesian product."""
    if variables is None:
        return [{}]
    if isinstance(variables, Mapping):
        names = list(variables)
        for n in names:
            vals = variables[n]
            if isinstance(vals, str | bytes) or not isinstance(vals, Iterable):
                raise VariableError(f"sweep variable {n!r}: expected a list of values")
        return [
            dict(zip(names, combo, strict=True)) for combo in itertools.product(*variables.values())
        ]
    out = []
    for i, row in enumerate(variables):
        if not isinstance(row, Mapping):
            raise VariableError(
                f"sweep variables[{i}]: expected a mapping, got {type(row).__name__}"
            )
        out.append(dict(row))
    return out


@dataclass(frozen=True)
class SweepCell:
    """One (variables, model, repeat) cell of a sweep and, once done, its result.

    ``status`` is ``pending`` until the cell ends, then the run's status (``success``,
    ``error``, ``cancelled``), or ``error`` with ``result=None`` when the cell could not
    send at all (e.g. a missing variable; ``error`` says why).
    """

    index: int
    variables: dict[str, object]
    model: str
    repeat: int
    result: RunResult | None = None
    status: str = "pending"
    error: str | None = None


class Sweep:
    """A running (or finished) sweep; ``await`` it for the finished sweep.

    Created by :meth:`Session.sweep`. Starts at once when created inside a running loop
    (a notebook cell), else on first ``await``. Failures never stop the other cells;
    :meth:`cancel` stops queued and running cells, which end ``cancelled``.
    """

    def __init__(
        self,
        session: Session,
        prompt_id: str,
        variables: list[dict[str, object]],
        models: list[str],
        *,
        concurrency: int,
        repeat: int,
        progress: bool,
        settings: Mapping[str, Any] | None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if repeat < 1:
            raise ValueError("repeat must be >= 1")
        self.session = session
        self.prompt_id = prompt_id
        self.sweep_id = uuid.uuid4().hex
        self.concurrency = concurrency
        self.repeat = repeat
        self.settings = dict(settings or {})
        self.cells: list[SweepCell] = [
            SweepCell(i, v, m, r)
            for i, (v, m, r) in enumerate(
                (v, m, r) for v in variables for m in models for r in range(repeat)
            )
        ]
        self.variable_names = list(dict.fromkeys(k for v in variables for k in v))
        self.models = models
        self.done = 0
        self.errors = 0
        self.cancelled = 0
        self._progress_enabled = progress
        self._listeners: list[Callable[[SweepCell], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._cell_tasks: list[asyncio.Task[None]] = []
        self._cancel_requested = False
        # validate every cell before anything runs: a typo fails fast, nothing logged
        for cell in self.cells:
            session.providers.resolve(cell.model)
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._start()

    # -- running -----------------------------------------------------------------------------

    def _start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        return self._task

    def __await__(self) -> Generator[Any, None, Sweep]:
        yield from self._start().__await__()
        return self

    async def wait(self) -> Sweep:
        """Wait for every cell to finish; returns the sweep."""
        await self._start()
        return self

    def subscribe(self, listener: Callable[[SweepCell], None]) -> Callable[[], None]:
        """Call ``listener(cell)`` as each cell finishes (SweepGrid uses it)."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

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
        session = self.session
        inst = None
        result: RunResult | None = None
        try:
            try:
                async with sem:
                    # started only once it holds a slot: at most `concurrency` live
                    # instances, so starting and closing stay O(concurrency), not O(cells)
                    inst = session.start(self.prompt_id, cell.variables)
                    result = await self._send(inst.id, cell.model)
            except asyncio.CancelledError:
                if inst is None or inst.status == "idle":
                    # never started: still leave a 'cancelled' row, as promised
                    if inst is None:
                        inst = session.start(self.prompt_id, cell.variables)
                    result = await self._send(inst.id, cell.model, cancelled=True)
                else:
                    raise
        except asyncio.CancelledError:
            last = inst.last_run if inst is not None else None
            if last is not None and last.status == "cancelled":
                result = last
            self._finish_cell(cell, bar, result, "cancelled", "cancelled")
            return
        except PromptStateError as exc:
            session.task_errors.append(exc)
            self._finish_cell(cell, bar, None, "error", f"{type(exc).__name__}: {exc}")
            return
        finally:
            if inst is not None:
                with contextlib.suppress(PromptStateError):
                    inst.close()  # the run log keeps the run; the store stays small
        self._finish_cell(cell, bar, result, result.status, result.error)

    def _finish_cell(
        self, cell: SweepCell, bar: Any, result: RunResult | None, status: str, error: str | None
    ) -> None:
        done = SweepCell(cell.index, cell.variables, cell.model, cell.repeat, result, status, error)
        self.cells[cell.index] = done
        self.done += 1
        if status == "error":
            self.errors += 1
        elif status == "cancelled":
            self.cancelled += 1
        self._update_bar(bar)
        for listener in list(self._listeners):
            with contextlib.suppress(Exception):  # a broken view must not stop the sweep
                listener(done)

    async def _send(self, instance_id: str, model: str, cancelled: bool = False) -> RunResult:
        return await execute_message(
            self.session,
            instance_id,
            None,
            model=model,
            settings=self.settings or None,
            sweep_id=self.sweep_id,
            precancelled=cancelled or self._cancel_requested,
        )

    def cancel(self) -> None:
        """Stop the sweep (from any thread): queued cells end ``cancelled`` uncalled."""
        self._cancel_requested = True
        loop = self._task.get_loop() if self._task is not None else None
        if loop is None:
            return
        try:
            same = asyncio.get_running_loop() is loop
        except RuntimeError:
            same = False
        if same:
            self._cancel_tasks()
        else:
            loop.call_soon_threadsafe(self._cancel_tasks)

    def _cancel_tasks(self) -> None:
        for t in self._cell_tasks:
            t.cancel()

    @property
    def finished(self) -> bool:
        """True once every cell has ended."""
        return self._task is not None and self._task.done()

    def add_done_callback(self, fn: Callable[[Sweep], None]) -> None:
        """Call ``fn(sweep)`` on the loop when the whole sweep has ended."""
        self._start().add_done_callback(lambda _t: fn(self))

    # -- progress ------------------------------------------------------------------------------

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
        cols = ", ".join(
            f"variables->>'$.{_json_key(n)}.value' AS {_ident(n)}" for n in self.variable_names
        )
        sql = (
            "SELECT run_id, "
            + (cols + ", " if cols else "")
            + "provider, model, status, response, error, input_tokens, output_tokens, "
            "latency_ms, ttft_ms, cost_usd, attempts, started_at FROM runs WHERE sweep_id = ? "
            "ORDER BY started_at, run_id"
        )
        return self.session.runs.sql(sql, [self.sweep_id])

    def df(self) -> Any:
        """The :meth:`relation` as a pandas DataFrame."""
        return self.relation().df()

    def __repr__(self) -> str:
        return (
            f"Sweep({self.prompt_id!r}, cells={len(self.cells)}, done={self.done}, "
            f"errors={self.errors}, cancelled={self.cancelled}, sweep_id={self.sweep_id!r})"
        )


def _json_key(name: str) -> str:
    return '"' + name.replace('"', '\\"') + '"'


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
