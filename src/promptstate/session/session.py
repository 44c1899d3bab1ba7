"""``Session``: the composition root that wires the store, run log, prompts and providers."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import os
import threading
import uuid
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from promptstate.core.reducers import reduce
from promptstate.core.selectors import select_instance
from promptstate.core.state import initial_state
from promptstate.core.store import Middleware, Store
from promptstate.devtools.export import parse_export
from promptstate.devtools.recorder import DevTools
from promptstate.engine.ports import MemoryCache, Runtime
from promptstate.engine.prompts import start_instance
from promptstate.engine.scoped import fetch_scoped_variables, set_scoped_variable
from promptstate.engine.send import check_name, clean_values, settle_orphan
from promptstate.engine.sweep import Sweep, expand_variables
from promptstate.errors import UnknownProviderError, VariableError
from promptstate.models.prompt import normalize_value
from promptstate.models.provider import Provider
from promptstate.providers.registry import ProviderRegistry
from promptstate.runlog import open_run_log
from promptstate.session.evals import EvalsMixin
from promptstate.session.instance import Instance
from promptstate.session.prompts import PromptRegistry
from promptstate.session.runs import Runs

__all__ = ["Session"]

T = TypeVar("T")
log = logging.getLogger("promptstate")


def _check_prices(prices: object) -> dict[str, tuple[float, float]]:
    if prices is None:
        return {}
    if not isinstance(prices, Mapping):
        raise VariableError("prices must map 'provider:model' to (input, output) USD per 1M")
    out: dict[str, tuple[float, float]] = {}
    for key, pair in prices.items():
        ok = (
            isinstance(key, str)
            and isinstance(pair, Sequence)
            and not isinstance(pair, str)
            and len(pair) == 2
            and all(
                isinstance(x, int | float)
                and not isinstance(x, bool)
                and math.isfinite(x)
                and x >= 0
                for x in pair
            )
        )
        if not ok:
            raise VariableError(
                f"prices[{key!r}] must be (input_usd_per_1M, output_usd_per_1M), got {pair!r}"
            )
        out[key] = (float(pair[0]), float(pair[1]))
    return out


class Session(EvalsMixin):
    """One store, one run log, the prompt sources and the providers.

    Parameters
    ----------
    db : str or path, optional
        DuckDB file for the run log, or a ``postgresql://user@host:port/dbname`` URL
        for a team's shared log; ``None`` keeps it in memory.
    user_id, org_id, project_id : str, optional
        Owners of the scoped variables to fetch from the run log's
        ``user_variables`` / ``org_variables`` / ``project_variables`` tables.
    providers : iterable of Provider, optional
        Extra or replacement providers (``ps.providers.OpenAICompatible(name="local", ...)``).
    prices : mapping, optional
        ``{"provider:model": (input_usd_per_1M, output_usd_per_1M)}`` for ``cost_usd``.
    cache : bool
        Reuse successful replies for identical requests (opt-in; also per send).
    middleware : sequence, optional
        Extra store middleware, outermost first.
    history : int
        How many actions ``session.devtools`` keeps (older ones fold into its base state).
    exclusive_db : bool
        Keep the DuckDB file open for the whole session (fastest; other processes cannot
        open it meanwhile). By default the file is held only while writing or querying,
        so several notebooks and the CLI can share one run log.
    lock_timeout : float
        Seconds to keep retrying when another process holds the file.
    db_options : mapping, optional
        Options of a Postgres run log (``db="postgresql://..."``, see docs/team.md):
        ``query_url``, ``heartbeat_interval``, ``heartbeat_expire``, ``retry_for``,
        ``hostname``.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | None = None,
        *,
        user_id: str | None = None,
        org_id: str | None = None,
        project_id: str | None = None,
        providers: Iterable[Provider] = (),
        prices: Mapping[str, tuple[float, float]] | None = None,
        cache: bool = False,
        middleware: Iterable[Middleware] = (),
        history: int = 500,
        exclusive_db: bool = False,
        lock_timeout: float = 60.0,
        db_options: Mapping[str, Any] | None = None,
    ) -> None:
        # validate everything before opening anything
        checked_prices = _check_prices(prices)
        for name, owner in (("user_id", user_id), ("org_id", org_id), ("project_id", project_id)):
            if owner is not None and not isinstance(owner, str):
                raise VariableError(f"{name} must be a string, not {type(owner).__name__}")
        provider_list = list(providers)
        self.id = uuid.uuid4().hex
        self.db = None if db is None else os.fspath(db)
        self.user_id, self.org_id, self.project_id = user_id, org_id, project_id
        self.cache = bool(cache)
        self.prices = checked_prices
        self.providers = ProviderRegistry(provider_list)
        self.devtools = DevTools(max_age=history)
        self.store = Store(reduce, initial_state(), tuple(middleware), recorder=self.devtools)
        self.devtools.attach(self.store)
        self.runlog = open_run_log(
            self.db,
            self.id,
            lock_timeout=lock_timeout,
            exclusive=exclusive_db,
            **dict(db_options or {}),
        )
        self._rt_ref: list[Runtime] = []
        self.prompts = PromptRegistry(self.runlog, lambda: self._rt_ref[0])
        self.runtime = Runtime(
            store=self.store,
            sink=self.runlog,
            reader=self.runlog,
            prompts=self.prompts,
            scoped=self.runlog,
            providers=self.providers,
            cache=MemoryCache(self.runlog),
            session_id=self.id,
            prices=self.prices,
            cache_default=self.cache,
            user_id=user_id,
            org_id=org_id,
            project_id=project_id,
        )
        self._rt_ref.append(self.runtime)
        self.runs = Runs(self.runlog, self.runtime, self.instance)
        self.devtools.restore_run = lambda run_id, into=None: self.runs.restore(run_id, into)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        # made outside any loop: the first widget or send made inside one binds it
        with contextlib.suppress(RuntimeError):
            self._bind_loop(asyncio.get_running_loop())
        if any(x is not None for x in (user_id, org_id, project_id)):
            fetch_scoped_variables(self.runtime)

    @classmethod
    def from_export(
        cls, text: str | bytes, db: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> Session:
        """A new session whose state is restored from ``session.devtools.export()``.

        Raises :class:`StateImportError` for a malformed export.
        """
        parse_export(text)  # validate before opening anything
        session = cls(db=db, **kwargs)
        try:
            session.import_state(text)
        except BaseException:
            session.close()
            raise
        return session

    def import_state(self, text: str | bytes) -> None:
        """Import a devtools export into this session; runs it had in flight end ``error``."""
        self.devtools.import_(text)
        self.settle_orphans()

    def settle_orphans(self) -> int:
        """End every run in flight that no task of this process executes (after an import)."""
        n = 0
        for iid in self.store.get_state().instance_ids:
            n += settle_orphan(
                self.runtime, iid, "the run was in flight when the state was exported"
            )
        return n

    @property
    def task_errors(self) -> list[BaseException]:
        """Errors of background work (widget sends, sweep cells), newest last."""
        return self.runtime.task_errors

    # -- loop handling -----------------------------------------------------------------------

    def _bind_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._loop_thread = threading.get_ident()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The main asyncio loop this session schedules coroutine work on."""
        return self._loop

    def main_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop coroutine work runs on, binding the running one if none is bound yet.

        A session made in a notebook cell is bound to the kernel's loop at once; one made
        outside any loop is bound by the first widget or send made inside one.
        """
        loop = self._loop
        if loop is not None and not loop.is_closed():
            return loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return None
        self._bind_loop(running)
        return running

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the session's main loop from any thread; never blocks.

        In JupyterLab >= 4.4 widget callbacks can arrive on a kernel subshell thread;
        coroutine work must still run on the kernel's main loop, where the providers'
        HTTP clients live. Exceptions are kept on the returned future, logged, and kept
        in ``session.task_errors``.
        """
        loop = self.main_loop()
        if loop is None:
            coro.close()
            raise RuntimeError(
                "no asyncio loop to run on: create the session inside a notebook cell "
                "or a running event loop"
            )
        fut = asyncio.run_coroutine_threadsafe(coro, loop)

        def record(f: concurrent.futures.Future[T]) -> None:
            if not f.cancelled() and f.exception() is not None:
                exc = f.exception()
                assert exc is not None
                log.warning("promptstate: background task failed: %s", exc)
                self.task_errors.append(exc)
                del self.task_errors[:-50]

        fut.add_done_callback(record)
        return fut

    # -- instances -----------------------------------------------------------------------------

    def start(
        self,
        prompt_id: str,
        variables: Mapping[str, object] | None = None,
        *,
        track_in_runs: bool = True,
        model: str | None = None,
        refresh: bool = False,
    ) -> Instance:
        """Start an instance of a prompt (fetching the prompt only if not cached).

        Parameters
        ----------
        prompt_id : str
        variables : mapping, optional
            The instance's own values (highest precedence). A name the prompt never
            uses gives an :class:`UnusedVariableWarning`.
        track_in_runs : bool
            Log every send in the ``runs`` table.
        model : str, optional
            Override the prompt's model, e.g. ``"openai:gpt-4o-mini"``.
        refresh : bool
            Fetch the prompt from its source again even if cached.
        """
        values = clean_values(variables)
        if model is not None:
            if not isinstance(model, str) or not model.strip():
                raise UnknownProviderError(repr(model))
            self.providers.resolve(model)
        iid = start_instance(
            self.runtime,
            prompt_id,
            values,
            model=model,
            track_in_runs=bool(track_in_runs),
            refresh=bool(refresh),
        )
        inst = Instance(self, iid)
        inst._warn_unused(values, stacklevel=2)
        return inst

    def sweep(
        self,
        prompt_id: str,
        variables: Sequence[Mapping[str, object]] | Mapping[str, Sequence[object]] | None = None,
        *,
        models: Sequence[str] | None = None,
        concurrency: int = 8,
        repeat: int = 1,
        progress: bool = True,
        settings: Mapping[str, Any] | None = None,
    ) -> Sweep:
        """Run a prompt over many variable sets and models; ``await`` the result.

        Parameters
        ----------
        prompt_id : str
        variables : list of dicts, or dict of lists
            A list gives one cell per dict; ``{"name": [v1, v2], ...}`` is the cartesian
            product of the lists.
        models : list of str, optional
            Model strings to run every variable set on (default: the prompt's model).
        concurrency : int
            Cells in flight at once; this replaces the providers' own
            ``max_concurrency`` for the sweep's calls.
        repeat : int
            Runs per cell.
        progress : bool
            Show a tqdm progress bar (notebook-aware) with done / error counts.
        settings : mapping, optional
            Provider settings for every run.

        Returns
        -------
        Sweep
            Starts at once inside a running loop; ``await sweep`` waits for it.
            ``sweep.relation()`` / ``sweep.df()`` give one row per run; every run carries
            ``sweep.sweep_id`` in the log.
        """
        prompt = self.prompts.get(prompt_id)
        rows = expand_variables(variables)
        model_list = list(models) if models else [prompt.model]
        for m in model_list:
            if not isinstance(m, str) or not m.strip():
                raise UnknownProviderError(repr(m))
        sweep = Sweep(
            self.runtime,
            lambda sql, params: self.runs.sql(sql, params),
            prompt_id,
            rows,
            model_list,
            concurrency=concurrency,
            repeat=repeat,
            progress=progress,
            settings=settings,
        )
        sweep.session = self
        return sweep

    def instance(self, instance_id: str) -> Instance:
        """A handle for an existing instance id (raises UnknownInstanceError)."""
        select_instance(self.store.get_state(), instance_id)
        return Instance(self, instance_id)

    @property
    def instances(self) -> list[Instance]:
        """Handles of every live instance, oldest first."""
        return [Instance(self, i) for i in self.store.get_state().instance_ids]

    # -- scoped variables ----------------------------------------------------------------------

    def set_scoped_variable(self, scope: str, name: str, value: object | None) -> None:
        """Set (``None`` deletes) a user/org/project variable for this session's owner.

        Written to the run log's ``<scope>_variables`` table and applied to the store.
        """
        check_name(name)
        text = None if value is None else normalize_value(name, value)
        set_scoped_variable(self.runtime, scope, name, text)

    def fetch_scoped_variables(self) -> None:
        """Re-read the scoped variables from the run log."""
        fetch_scoped_variables(self.runtime)

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel runs in flight, close provider clients and the run log."""
        tasks = self.runtime.tasks.all_tasks()
        for rid, _task in tasks:
            self.runtime.tasks.cancel(rid)
        if tasks:
            await asyncio.gather(*(t for _, t in tasks), return_exceptions=True)
        await self.providers.aclose()
        self.runlog.close()

    def close(self) -> None:
        """Flush and close the run log (use :meth:`aclose` inside a loop to also close clients)."""
        self.runlog.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        st = self.store.get_state()
        return (
            f"Session(db={self.db!r}, instances={len(st.instance_order)}, "
            f"prompts_cached={len([k for k in st.prompts if '@' not in k])})"
        )
