"""The engine's ports and the runtime context injected into every effect.

Effects never see the ``Session``: they receive a :class:`Runtime` (as Redux Toolkit
thunks receive ``extraArgument``) holding the store and narrow ports that the session
wires to real implementations (the run log, the prompt registry, the provider registry).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptstate.core.store import Store
from promptstate.models.prompt import Prompt
from promptstate.models.provider import Provider
from promptstate.models.run import RunResult

__all__ = [
    "IdSource",
    "MemoryCache",
    "PromptSource",
    "ProviderResolver",
    "ResponseCache",
    "RunReader",
    "RunSink",
    "Runtime",
    "ScopedSource",
    "TaskRegistry",
    "new_short_id",
]


class RunSink(Protocol):
    """Where runs, prompt versions and scoped variables are written (the run log)."""

    def write_run(self, result: RunResult) -> concurrent.futures.Future[None]:
        """Queue a run row (upsert by ``run_id``); the future resolves once committed."""

    def write_running(
        self, run_id: str, build: Callable[[], RunResult]
    ) -> concurrent.futures.Future[None]:
        """Queue a run's ``running`` row, deferred: it may wait briefly and be replaced
        unwritten by the run's next row; ``build`` is called only if it is written."""

    def write_runs(self, results: Sequence[RunResult]) -> concurrent.futures.Future[None]:
        """Queue many runs' rows as one write; the future resolves once all are committed."""

    def save_prompt(
        self, definition: Mapping[str, Any], source: str
    ) -> concurrent.futures.Future[None]:
        """Store a prompt version (first write of an (id, version) wins)."""

    def set_scoped(
        self, scope: str, owner: str, name: str, value: str | None
    ) -> concurrent.futures.Future[None]:
        """Set (``None``: delete) a scoped variable."""


class RunReader(Protocol):
    """Reading runs back (restore, re-run, the response cache)."""

    def get_run(self, run_id: str) -> RunResult | None:
        """One run from the log, or None."""

    def cached_response(self, cache_key: str) -> dict[str, Any] | None:
        """The newest successful reply logged under ``cache_key``."""


class PromptSource(Protocol):
    """Where prompt definitions come from."""

    def fetch(self, prompt_id: str) -> tuple[Prompt, str]:
        """The prompt and a description of its source; raises UnknownPromptError."""

    def fetch_version(self, prompt_id: str, version: str) -> Prompt | None:
        """One stored version of a prompt, or None."""


class ScopedSource(Protocol):
    """The user/org/project variable layers."""

    def fetch_scoped(
        self, user_id: str | None, org_id: str | None, project_id: str | None
    ) -> dict[str, dict[str, str]]:
        """``{"user": {...}, "org": {...}, "project": {...}}``."""


class ProviderResolver(Protocol):
    """Model strings to providers."""

    def resolve(self, model: str) -> tuple[str, str, Provider]:
        """``(provider_name, model_name, provider)``; raises UnknownProviderError."""


class ResponseCache(Protocol):
    """Replies reused for identical requests."""

    def lookup(self, key: str) -> dict[str, Any] | None:
        """A cached reply (``response``, ``input_tokens``, ``output_tokens``) or None."""

    def store(self, key: str, result: RunResult) -> None:
        """Remember a successful reply."""


class MemoryCache:
    """This session's replies in memory, falling back to earlier sessions' in the log."""

    def __init__(self, reader: RunReader) -> None:
        self._reader = reader
        self._hits: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def lookup(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            hit = self._hits.get(key)
        if hit is not None:
            return hit
        found = self._reader.cached_response(key)
        if found is not None:
            with self._lock:
                self._hits[key] = found
        return found

    def store(self, key: str, result: RunResult) -> None:
        with self._lock:
            self._hits[key] = {
                "response": result.response,
                "input_tokens": result.input_tokens,
                "output_tokens": result.output_tokens,
            }


class TaskRegistry:
    """Runs in flight in this process: their tasks, cancel requests and provider slots.

    Thread-safe: a cancel may arrive from a widget's subshell thread while the run's task
    lives on the kernel's main loop.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._cancel_requested: set[str] = set()
        self._reserved: set[str] = set()
        self._held: dict[str, weakref.ref[Any]] = {}
        self._semaphores: dict[tuple[str, int], asyncio.Semaphore] = {}

    def reserve(self, run_id: str) -> None:
        """Claim a run that was just recorded and is about to be executed here."""
        with self._lock:
            self._reserved.add(run_id)

    def hold(self, run_id: str, owner: Any) -> None:
        """Keep the run claimed only while ``owner`` (its unstarted coroutine) exists."""
        with self._lock:
            self._reserved.discard(run_id)
            if run_id not in self._tasks:
                self._held[run_id] = weakref.ref(owner)

    def add(self, run_id: str, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._tasks[run_id] = task
            self._reserved.discard(run_id)
            self._held.pop(run_id, None)

    def discard(self, run_id: str) -> None:
        with self._lock:
            self._tasks.pop(run_id, None)
            self._reserved.discard(run_id)
            self._held.pop(run_id, None)
            self._cancel_requested.discard(run_id)

    def known(self, run_id: str) -> bool:
        """True while the run is being executed by this process (or about to be)."""
        with self._lock:
            if run_id in self._tasks or run_id in self._reserved:
                return True
            ref = self._held.get(run_id)
            return ref is not None and ref() is not None

    def cancel_requested(self, run_id: str) -> bool:
        with self._lock:
            return run_id in self._cancel_requested

    def cancel(self, run_id: str) -> bool:
        """Record a cancel (thread-safe) and cancel the task on its own loop."""
        with self._lock:
            self._cancel_requested.add(run_id)
            task = self._tasks.get(run_id)
        if task is None:
            return False
        loop = task.get_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task.cancel()
        elif not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        return True

    def all_tasks(self) -> list[tuple[str, asyncio.Task[Any]]]:
        with self._lock:
            return list(self._tasks.items())

    def semaphore(self, provider: Provider, limit: int | None = None) -> asyncio.Semaphore:
        """The provider's concurrency slots on the running loop (``limit`` overrides)."""
        loop = asyncio.get_running_loop()
        cap = max(1, int(limit if limit is not None else provider.max_concurrency))
        key = (f"{provider.name}#{cap}", id(loop))
        with self._lock:
            sem = self._semaphores.get(key)
            if sem is None:
                sem = self._semaphores[key] = asyncio.Semaphore(cap)
            return sem


class IdSource:
    """Fresh 32-hex-char ids: a random 64-bit session prefix and a 64-bit counter.

    ``uuid4()`` costs an ``os.urandom`` syscall per id (~0.1 ms on a loaded machine, two
    per run); this draws 8 random bytes once per process and counts. Ids stay globally
    unique across processes and hosts (the prefix is as random as half a uuid4) and
    within one process (the counter never repeats). A forked child draws a new prefix,
    so it never repeats its parent's ids. :meth:`short` gives the 12-char instance ids
    (48 bits from a per-process generator seeded from ``os.urandom``).
    """

    def __init__(self) -> None:
        self._reseed()

    def _reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)  # next() on a count is atomic under the GIL
        self._rng = random.Random(os.urandom(16))

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"

    def short(self) -> str:
        """A 12-hex-char id (instances): random, not counted, as before."""
        return f"{self._rng.getrandbits(48):012x}"


_IDS = IdSource()
if hasattr(os, "register_at_fork"):  # a forked child must not repeat its parent's ids
    os.register_at_fork(after_in_child=_IDS._reseed)


def _new_id() -> str:
    return _IDS()


def new_short_id() -> str:
    """A fresh 12-hex-char id (instance ids); see :class:`IdSource`."""
    return _IDS.short()


@dataclass
class Runtime:
    """Everything an effect may use; built once by the session.

    Attributes
    ----------
    store : Store
    sink : RunSink
    reader : RunReader
    prompts : PromptSource
    scoped : ScopedSource
    providers : ProviderResolver
    cache : ResponseCache
    session_id : str
        Stamped on every run.
    prices : mapping
        ``{"provider:model": (input_usd_per_1M, output_usd_per_1M)}``.
    cache_default : bool
        Whether sends use the response cache unless told otherwise.
    clock, new_id, new_instance_id : callables
        Wall-clock seconds, fresh 32-char ids and fresh 12-char instance ids (swappable
        in tests).
    """

    store: Store
    sink: RunSink
    reader: RunReader
    prompts: PromptSource
    scoped: ScopedSource
    providers: ProviderResolver
    cache: ResponseCache
    session_id: str
    prices: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    cache_default: bool = False
    clock: Callable[[], float] = time.time
    new_id: Callable[[], str] = _new_id
    new_instance_id: Callable[[], str] = new_short_id
    tasks: TaskRegistry = field(default_factory=TaskRegistry)
    task_errors: list[BaseException] = field(default_factory=list)
    user_id: str | None = None
    org_id: str | None = None
    project_id: str | None = None

    def cost(self, provider: str, model: str, usage: tuple[int | None, int | None]) -> float | None:
        """USD cost of a reply from ``prices``, or None when unpriced or tokens unknown."""
        price = self.prices.get(f"{provider}:{model}")
        if price is None or usage[0] is None or usage[1] is None:
            return None
        return (usage[0] * price[0] + usage[1] * price[1]) / 1_000_000
