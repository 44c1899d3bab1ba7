"""A background job of many cells on the kernel's loop: await it, cancel it from anywhere.

``Sweep`` and ``Eval`` are both one; a subclass implements :meth:`Job._run` and keeps its
cells' tasks in ``_cell_tasks``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from promptstate.core.actions import SweepFinished
from promptstate.core.state import SweepState
from promptstate.engine.gcpause import runs_in_flight
from promptstate.engine.ports import Runtime

__all__ = ["Job"]

J = TypeVar("J", bound="Job")


class Job:
    """Starts on first await (or at once inside a running loop); ``cancel()`` is thread-safe."""

    _rt: Runtime
    _job_id: str

    def _init_job(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._cell_tasks: list[asyncio.Task[Any]] = []
        self._cancel_requested = False
        self._final: SweepState | None = None

    def _progress(self) -> SweepState:
        """Progress in the store (``state.sweeps``); after the end, the final counts."""
        found = self._rt.store.get_state().sweeps.get(self._job_id)
        if found is not None:
            return found
        if self._final is not None:
            return self._final
        return SweepState(prompt_id="", total=0)  # a past state before the job started

    def _close_progress(self) -> None:
        """Keep the final counts here and let the store drop the job's progress."""
        found = self._rt.store.present_state().sweeps.get(self._job_id)
        if found is not None:
            self._final = SweepState(
                prompt_id=found.prompt_id,
                total=found.total,
                done=found.done,
                errors=found.errors,
                cancelled=found.cancelled,
            )
        self._rt.store.dispatch(SweepFinished(sweep_id=self._job_id))

    async def _run(self) -> None:  # pragma: no cover - every subclass implements it
        raise NotImplementedError

    async def _run_in_flight(self) -> None:
        with runs_in_flight():
            await self._run()

    def _start(self) -> asyncio.Task[None]:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run_in_flight())
        return self._task

    def __await__(self: J) -> Generator[Any, None, J]:
        yield from self._start().__await__()
        return self

    async def wait(self: J) -> J:
        """Wait for every cell to finish; returns the job."""
        await self._start()
        return self

    @property
    def finished(self) -> bool:
        """True once every cell has ended."""
        return self._task is not None and self._task.done()

    def add_done_callback(self: J, fn: Callable[[J], None]) -> None:
        """Call ``fn(job)`` on the loop once every cell has ended."""
        self._start().add_done_callback(lambda _t: fn(self))

    def cancel(self) -> None:
        """Stop the job (from any thread): queued cells end ``cancelled`` uncalled."""
        self._cancel_requested = True
        loop = self._task.get_loop() if self._task is not None else None
        if loop is None or loop.is_closed():
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
