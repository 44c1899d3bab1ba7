"""Sweeps: one prompt over many variable sets and models, concurrently, all in the run log."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import itertools
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptstate.core.actions import (
    CellEnd,
    SentCell,
    SweepCellsFinished,
    SweepCellsSent,
    SweepStarted,
)
from promptstate.core.state import prompt_key
from promptstate.engine.cells import CellRequest, call_cell, open_result, render_cells, reply_now
from promptstate.engine.execute import describe_error
from promptstate.engine.gcpause import paused_gc
from promptstate.engine.job import Job
from promptstate.engine.ports import Runtime
from promptstate.engine.prompts import fetch_prompt
from promptstate.engine.send import check_name, clean_values
from promptstate.errors import PromptStateError, VariableError
from promptstate.models.provider import validate_settings
from promptstate.models.run import RunResult

__all__ = ["Sweep", "SweepCell", "expand_variables"]

log = logging.getLogger("promptstate")

Query = Callable[[str, list[Any]], Any]
_Ended = tuple[int, RunResult | None, str, str | None]

# A cell still in flight this long after it was sent gets its 'running' row written (so a
# crash leaves it 'interrupted'); a cell that ends sooner costs one row, its last.
RUNNING_ROW_DELAY = 0.05


def _log_failure(fut: concurrent.futures.Future[None]) -> None:
    if fut.exception() is not None:  # the writer logged it too; the terminal row retries
        log.warning("promptstate: a sweep's running rows were not written: %s", fut.exception())


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
        self.sweep_id = self._job_id = rt.new_id()
        self.cells: list[SweepCell] = [
            SweepCell(i, v, m, r)
            for i, (v, m, r) in enumerate(
                (v, m, r) for v in variables for m in models for r in range(self.repeat)
            )
        ]
        self.variable_names = list(dict.fromkeys(k for v in variables for k in v))
        self.models = models
        self._progress_enabled = progress
        self._ended_order: list[int] = []  # cell indexes in the order they were committed
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
        the store lock, after the store counts the cell as done.
        """
        seen = [0]
        lock = threading.Lock()  # dispatches on two threads must not report a cell twice

        def on_change() -> None:
            ended = self._ended_order
            with lock:
                new = ended[seen[0] :]
                seen[0] += len(new)
            for index in new:
                listener(self.cells[index])

        return self._rt.store.subscribe(on_change)

    @property
    def in_flight(self) -> list[int]:
        """Indexes of the cells whose call is in flight now."""
        return list(getattr(self, "_inflight", ()))

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._inflight: dict[int, tuple[str, asyncio.Task[RunResult]]] = {}
        self._ended: list[_Ended] = []
        self._flush_due = False
        self._uncommitted = 0  # cells ended but not yet committed (bounded: back-pressure)
        self._bar = self._progress_bar()
        self._saved_versions: set[tuple[str, str]] = set()
        todo = collections.deque(range(len(self.cells)))
        calls_cancelled = False
        bound = max(4 * self.concurrency, 1000)
        try:
            while todo or self._inflight or self._uncommitted:
                if self._cancel_requested and not calls_cancelled:
                    calls_cancelled = True  # once: a second cancel would cut the cleanup
                    for _rid, task in self._inflight.values():
                        task.cancel()
                    if todo:  # never called: each still gets its 'cancelled' row
                        self._send([todo.popleft() for _ in range(len(todo))], cancelled=True)
                free = self.concurrency - len(self._inflight)
                if todo and free > 0 and self._uncommitted < bound:
                    # every cell that has a free slot now is rendered in one transaction
                    self._send([todo.popleft() for _ in range(min(free, len(todo)))])
                    if self._ended:  # cells answered at once: to the log now, so the
                        self._flush()  # writer commits them while the next batch renders
                    continue
                self._wake.clear()
                await self._wake.wait()
        except asyncio.CancelledError:
            # the awaiting cell was interrupted: every cell still ends, with its row
            self._cancel_requested = True
            if not calls_cancelled:
                for _rid, task in self._inflight.values():
                    task.cancel()
            if todo:
                self._send(list(todo), cancelled=True)
                todo.clear()
            while self._inflight or self._uncommitted:
                self._wake.clear()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._wake.wait()
            raise
        finally:
            self._close_progress()
            if self._bar is not None:
                self._bar.close()

    def _cancel_tasks(self) -> None:
        # on the loop: the run loop above cancels the calls and ends the queued cells
        wake = getattr(self, "_wake", None)
        if wake is not None:
            wake.set()

    @paused_gc()  # nothing here suspends
    def _send(self, indexes: list[int], *, cancelled: bool = False) -> None:
        """Record a batch of cells in one transaction, then start (or end) each one."""
        rt = self._rt
        if self.prompt_id not in rt.store.present_state().prompts:
            # dropped from the cache mid-sweep (invalidated): fetched again, as a send does
            with contextlib.suppress(PromptStateError):
                fetch_prompt(rt, self.prompt_id)
        cells = [self.cells[i] for i in indexes]
        rendered = render_cells(
            rt,
            self.sweep_id,
            self.prompt_id,
            [CellRequest(c.index, c.variables, c.model) for c in cells],
            self.settings,
            rt.cache_default,
        )
        for index, exc in rendered.failed:
            rt.task_errors.append(exc)
            del rt.task_errors[:-50]
            self._end(index, None, "error", describe_error(exc))
        action = rendered.action
        if action is None:
            return
        version = (action.prompt_id, action.prompt_version)
        if version not in self._saved_versions:  # the log keeps every version a run used
            self._saved_versions.add(version)
            entry = rt.store.present_state().prompts.get(prompt_key(*version))
            if entry is not None:
                rt.sink.save_prompt(entry.prompt.to_dict(), entry.source)
        loop = self._loop
        for sent in action.cells:
            if cancelled:
                rt.tasks.discard(sent.run_id)
                result = open_result(
                    action,
                    sent,
                    status="cancelled",
                    error="cancelled by the user",
                    finished_at=rt.clock(),
                    session_id=rt.session_id,
                )
                self._end(sent.index, result, "cancelled", result.error)
                continue
            provider = rendered.providers[sent.index]
            known = reply_now(rt, action, sent, provider)
            if known is not None:  # answered without I/O (echo): no task for it
                rt.tasks.discard(sent.run_id)
                self._end(sent.index, known, known.status, known.error)
                continue
            task = loop.create_task(
                call_cell(
                    rt,
                    action,
                    sent,
                    provider,
                    user_cancel=lambda: self._cancel_requested,
                )
            )
            rt.tasks.add(sent.run_id, task)
            self._inflight[sent.index] = (sent.run_id, task)
            task.add_done_callback(functools.partial(self._called, action, sent))
        if not cancelled:
            loop.call_later(RUNNING_ROW_DELAY, self._write_running, action)

    def _called(
        self, action: SweepCellsSent, sent: SentCell, task: asyncio.Task[RunResult]
    ) -> None:
        self._inflight.pop(sent.index, None)
        self._rt.tasks.discard(sent.run_id)
        if task.cancelled():  # cancelled before its first step: nothing was called
            result = open_result(
                action,
                sent,
                status="cancelled",
                error="cancelled by the user" if self._cancel_requested else "cancelled",
                finished_at=self._rt.clock(),
                session_id=self._rt.session_id,
            )
        else:
            result = task.result()
        self._end(sent.index, result, result.status, result.error)

    def _write_running(self, action: SweepCellsSent) -> None:
        # Cells of this batch still in flight after the delay get their 'running' row (a
        # crash now leaves them 'interrupted'); quick cells never cost that write.
        rows = [
            open_result(action, c, session_id=self._rt.session_id)
            for c in action.cells
            if c.index in self._inflight and self._inflight[c.index][0] == c.run_id
        ]
        if rows:
            try:
                fut = self._rt.sink.write_runs(rows)
            except Exception as exc:  # the terminal rows report it to the cells
                log.warning("promptstate: a sweep's running rows were not written: %s", exc)
                return
            fut.add_done_callback(_log_failure)

    def _end(self, index: int, result: RunResult | None, status: str, error: str | None) -> None:
        self._ended.append((index, result, status, error))
        self._uncommitted += 1
        if not self._flush_due:  # one log write for every cell ending in this iteration
            self._flush_due = True
            self._loop.call_soon(self._flush)
        self._wake.set()

    @paused_gc()  # nothing here suspends
    def _flush(self) -> None:
        self._flush_due = False
        ended, self._ended = self._ended, []
        if not ended:
            return
        results = [r for _i, r, _s, _e in ended if r is not None]
        loop = self._loop
        if not results:
            self._committed(ended, None)
            return
        try:
            fut = self._rt.sink.write_runs(results)
        except Exception as exc:  # e.g. the log closed under a running sweep
            fut = concurrent.futures.Future()  # the cells still end, as not logged
            fut.set_exception(exc)

        def done(f: concurrent.futures.Future[None]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed under us
                loop.call_soon_threadsafe(self._committed, ended, f)

        fut.add_done_callback(done)

    @paused_gc()  # nothing here suspends (listeners run inside the dispatch)
    def _committed(self, ended: list[_Ended], fut: concurrent.futures.Future[None] | None) -> None:
        """The batch is on disk (or failed to be): only now do its cells count as done."""
        rt = self._rt
        failure = None if fut is None else fut.exception()
        ends = []
        for index, result, status, error in ended:
            if failure is not None and result is not None:
                status, error = "error", describe_error(failure)
            elif (
                result is not None
                and status == "success"
                and result.cache_key
                and not result.cache_hit
            ):
                try:  # a failing cache must not keep the cell from counting as done
                    rt.cache.store(result.cache_key, result)
                except Exception:
                    log.exception("promptstate: a sweep cell's reply was not cached")
            c = self.cells[index]
            self.cells[index] = SweepCell(
                c.index, c.variables, c.model, c.repeat, result, status, error
            )
            ends.append(
                CellEnd(
                    index=index,
                    status=status,
                    run_id=None if result is None else result.run_id,
                    error=error,
                )
            )
        self._uncommitted -= len(ended)
        self._ended_order.extend(i for i, _r, _s, _e in ended)
        try:
            rt.store.dispatch(SweepCellsFinished(sweep_id=self.sweep_id, cells=tuple(ends)))
            if self._bar is not None:
                self._bar.update(len(ended))
                self._bar.set_postfix(errors=self.errors, cancelled=self.cancelled, refresh=False)
        finally:
            self._wake.set()  # whatever a view does, the run loop sees the cells end

    # -- progress bar --------------------------------------------------------------------------

    def _progress_bar(self) -> Any:
        if not self._progress_enabled:
            return None
        try:
            from tqdm.auto import tqdm
        except ImportError:  # progress is optional
            return None
        return tqdm(total=len(self.cells), desc=f"sweep {self.prompt_id}", unit="run", leave=True)

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
