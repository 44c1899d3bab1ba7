"""Session (store + run log + providers), prompt registry, run queries, instance handles."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import threading
import time
import uuid
import warnings
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from promptstate.core.reducers import reduce
from promptstate.core.selectors import (
    MergedVariables,
    select_display_messages,
    select_instance,
    select_last_run,
    select_merged_variables,
    select_prompt_entry,
)
from promptstate.core.state import Action, ChatMessage, State, initial_state
from promptstate.core.store import Middleware, Store
from promptstate.devtools.recorder import DevTools
from promptstate.engine.execute import (
    RunResult,
    execute_message,
    fetch_prompt,
    fetch_scoped_variables,
    start_instance,
)
from promptstate.engine.runs import RunDiff, RunRecord, diff_runs, get_run, rerun, restore_run
from promptstate.engine.sweep import Sweep, expand_variables
from promptstate.errors import (
    PromptFileError,
    UnknownPromptError,
    UnusedVariableWarning,
    VariableError,
)
from promptstate.models.prompt import Prompt, load_prompt_file, normalize_value, prompt_from_dict
from promptstate.providers._base import Provider
from promptstate.providers.registry import ProviderRegistry
from promptstate.runlog.log import RunLog

__all__ = ["Instance", "PromptRegistry", "Runs", "Session"]

T = TypeVar("T")
_SCOPES = ("user", "org", "project")


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise VariableError(f"variable names must be ASCII identifiers, got {name!r}")
    return name


class PromptRegistry:
    """Where prompts come from: registered objects, prompt files, the DB ``prompts`` table.

    A prompt is fetched from its source once per session and cached in the store;
    ``fetch_count`` counts real fetches per prompt id (cache hits do not count).
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._memory: dict[str, Prompt] = {}
        self._files: dict[str, Path] = {}
        self._lock = threading.Lock()
        self.fetch_count: dict[str, int] = {}

    def register(self, prompt: Prompt) -> Prompt:
        """Make ``prompt`` available to :meth:`Session.start`.

        Registering a changed prompt (a new version) under a known id drops the cached
        copy, so the next ``start`` uses the new version; running instances keep theirs.
        """
        if not isinstance(prompt, Prompt):
            raise TypeError(f"register() takes a ps.Prompt, not {type(prompt).__name__}")
        with self._lock:
            self._memory[prompt.id] = prompt
        cached = self._session.store.get_state().prompts.get(prompt.id)
        if cached is not None and cached.prompt.version != prompt.version:
            self._session.store.dispatch(Action("prompts/invalidated", {"prompt_id": prompt.id}))
        return prompt

    def load(self, path: str | os.PathLike[str]) -> list[Prompt]:
        """Load every ``.yaml``/``.yml``/``.json`` prompt file in a directory, or one file.

        Files are validated now (a bad file raises :class:`PromptFileError` naming it and
        nothing is loaded); the file is read again on every fetch, so ``refresh=True``
        picks up edits.
        """
        p = Path(path)
        if p.is_dir():
            files = sorted(
                f
                for f in p.iterdir()
                if f.suffix.lower() in (".yaml", ".yml", ".json") and f.is_file()
            )
        elif p.is_file():
            files = [p]
        else:
            raise PromptFileError(str(p), "no such file or directory")
        found: dict[str, tuple[Prompt, Path]] = {}
        for f in files:
            for prompt in load_prompt_file(f):
                if prompt.id in found:
                    raise PromptFileError(
                        str(f), f"prompt id {prompt.id!r} also defined in {found[prompt.id][1]}"
                    )
                found[prompt.id] = (prompt, f)
        with self._lock:
            for pid, (_, f) in found.items():
                self._files[pid] = f
                self._memory.pop(pid, None)
        return [pr for pr, _ in found.values()]

    def save(self, prompt: Prompt) -> Prompt:
        """Store ``prompt`` in the run log's ``prompts`` table (and register it)."""
        self._session.runlog.save_prompt(prompt.to_dict(), "db").result()
        return self.register(prompt)

    def ids(self) -> list[str]:
        """Every prompt id any source knows."""
        with self._lock:
            known = set(self._memory) | set(self._files)
        known |= set(self._session.runlog.prompt_ids())
        return sorted(known)

    def get(self, prompt_id: str, refresh: bool = False) -> Prompt:
        """The prompt as cached in this session (fetched once unless ``refresh``)."""
        return fetch_prompt(self._session, prompt_id, refresh=refresh).prompt

    def _fetch(self, prompt_id: str) -> tuple[Prompt, str]:
        """Fetch from the first source that knows the id (memory, files, then the DB)."""
        if not isinstance(prompt_id, str):
            raise UnknownPromptError(repr(prompt_id))
        with self._lock:
            mem = self._memory.get(prompt_id)
            path = self._files.get(prompt_id)
        if mem is not None:
            result = (mem, "memory")
        elif path is not None:
            match = [p for p in load_prompt_file(path) if p.id == prompt_id]
            if not match:
                raise PromptFileError(str(path), f"prompt {prompt_id!r} is no longer in this file")
            result = (match[0], f"file:{path}")
        else:
            stored = self._session.runlog.load_prompt(prompt_id)
            if stored is None:
                raise UnknownPromptError(prompt_id, self.ids())
            result = (prompt_from_dict(stored, f"prompt {prompt_id!r} from the DB"), "db")
        with self._lock:
            self.fetch_count[prompt_id] = self.fetch_count.get(prompt_id, 0) + 1
        return result

    def __repr__(self) -> str:
        return f"PromptRegistry({self.ids()})"


class Runs:
    """SQL access to the run log (``session.runs``)."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._page_cache: tuple[tuple[str, bool, int], float, Any] | None = None

    def sql(
        self, query: str, params: Iterable[Any] | None = None, *, read_only: bool = False
    ) -> Any:
        """Run SQL on the run log and return a DuckDB relation (``.df()``, ``.fetchall()``...).

        Pending writes are flushed first, so every finished run is visible.
        ``read_only=True`` (the run-history widget's path) refuses anything but a plain
        SELECT over the log's tables with :class:`ReadOnlyQueryError`.
        """
        return self._session.runlog.sql(query, params, read_only=read_only)

    def page(
        self, query: str, offset: int = 0, limit: int = 100, *, read_only: bool = True
    ) -> tuple[list[str], list[tuple[Any, ...]], int]:
        """One page of a query's result: ``(columns, rows, total_rows)``.

        Only the page's rows leave DuckDB, so a 100k-row result stays cheap to browse.
        """
        # paging through one result re-uses its materialization while nothing was written
        # (by this session; other processes' writes show within a couple of seconds)
        runlog = self._session.runlog
        key = (query, read_only, runlog.flushes)
        cached = self._page_cache
        if cached is not None and cached[0] == key and time.monotonic() - cached[1] < 2.0:
            table = cached[2]
        else:
            table = runlog.arrow(query, read_only=read_only)
            if table is None:
                return [], [], 0
            self._page_cache = (key, time.monotonic(), table)
        page = table.slice(max(0, int(offset)), max(0, int(limit)))
        rows = list(zip(*(col.to_pylist() for col in page.columns), strict=True))
        return list(table.column_names), rows, int(table.num_rows)

    def count(self) -> int:
        """Number of rows in ``runs``."""
        return int(self.sql("SELECT count(*) FROM runs").fetchall()[0][0])

    def flush(self) -> None:
        """Block until every run written so far is committed."""
        self._session.runlog.flush()

    def get(self, run_id: str) -> RunRecord:
        """One run as a :class:`RunRecord` (raises :class:`UnknownRunError`)."""
        return get_run(self._session, run_id)

    def diff(self, a: str, b: str) -> RunDiff:
        """Compare two runs: fields, variables, rendered prompt and response."""
        return diff_runs(get_run(self._session, a), get_run(self._session, b))

    async def rerun(self, run_id: str, model: str | None = None) -> RunResult:
        """Re-run with that run's prompt version and variables (optionally another model)."""
        return await rerun(self._session, run_id, model)

    def restore(self, run_id: str, into: Instance | None = None) -> Instance:
        """The instance state (variables, conversation) that produced ``run_id``."""
        return restore_run(self._session, run_id, into)


class Session:
    """One store, one run log, the prompt sources and the providers.

    Parameters
    ----------
    db : str or path, optional
        DuckDB file for the run log; ``None`` keeps it in memory.
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
        Extra store middleware, outermost first (after the devtools recorder).
    history : int
        How many actions ``session.devtools`` keeps (older ones fold into its base state).
    exclusive_db : bool
        Keep the DuckDB file open for the whole session (fastest; other processes cannot
        open it meanwhile). By default the file is held only while writing or querying,
        so several notebooks and the CLI can share one run log.
    lock_timeout : float
        Seconds to keep retrying when another process holds the file.
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
    ) -> None:
        self.id = uuid.uuid4().hex
        self.db = None if db is None else os.fspath(db)
        self.user_id, self.org_id, self.project_id = user_id, org_id, project_id
        self.cache = cache
        self.prices = dict(prices or {})
        self.runlog = RunLog(self.db, self.id, lock_timeout=lock_timeout, exclusive=exclusive_db)
        self.providers = ProviderRegistry(providers)
        self.devtools = DevTools(max_age=history, secrets=self.providers.secrets)
        self.store = Store(reduce, initial_state(), (self.devtools.middleware, *middleware))
        self.devtools.restore_run = lambda run_id, into=None: restore_run(self, run_id, into)
        self.prompts = PromptRegistry(self)
        self.runs = Runs(self)
        self._tasks: dict[str, asyncio.Task[Any]] = {}
        self._cancel_requested: set[str] = set()
        self._semaphores: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._response_cache: dict[str, dict[str, Any]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.task_errors: list[BaseException] = []
        with contextlib.suppress(RuntimeError):
            self._bind_loop(asyncio.get_running_loop())
        if any(x is not None for x in (user_id, org_id, project_id)):
            fetch_scoped_variables(self)

    @classmethod
    def from_export(
        cls, text: str | bytes, db: str | os.PathLike[str] | None = None, **kwargs: Any
    ) -> Session:
        """A new session whose state is restored from ``session.devtools.export()``.

        Raises :class:`StateImportError` for a malformed or tampered export.
        """
        from promptstate.devtools.recorder import parse_export

        parse_export(text)  # validate before opening anything
        session = cls(db=db, **kwargs)
        try:
            session.devtools.import_(text)
        except BaseException:
            session.close()
            raise
        return session

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
        HTTP clients live. Exceptions are kept on the returned future and in
        ``session.task_errors``.
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
                self.task_errors.append(f.exception())  # type: ignore[arg-type]
                del self.task_errors[:-50]

        fut.add_done_callback(record)
        return fut

    def _semaphore(self, provider: Provider) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._bind_loop(loop)
        key = (provider.name, id(loop))
        sem = self._semaphores.get(key)
        if sem is None:
            sem = self._semaphores[key] = asyncio.Semaphore(max(1, int(provider.max_concurrency)))
        return sem

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
        values = {_check_name(k): normalize_value(k, v) for k, v in (variables or {}).items()}
        if model is not None:
            self.providers.resolve(model)
        iid = start_instance(
            self, prompt_id, values, model=model, track_in_runs=track_in_runs, refresh=refresh
        )
        inst = Instance(self, iid)
        unused = sorted(set(values) - inst.prompt.used_variables)
        if unused:
            warnings.warn(
                f"prompt {prompt_id!r} never uses variable(s) {', '.join(unused)}",
                UnusedVariableWarning,
                stacklevel=2,
            )
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
            Cells in flight at once (the providers' own caps still apply).
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
        return Sweep(
            self,
            prompt_id,
            rows,
            model_list,
            concurrency=concurrency,
            repeat=repeat,
            progress=progress,
            settings=settings,
        )

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
        if scope not in _SCOPES:
            raise VariableError(f"scope must be one of {', '.join(_SCOPES)}, not {scope!r}")
        owner = getattr(self, f"{scope}_id")
        if owner is None:
            raise VariableError(f"this session has no {scope}_id; pass {scope}_id= to ps.Session")
        _check_name(name)
        text = None if value is None else normalize_value(name, value)
        self.runlog.set_scoped(scope, owner, name, text).result()
        self.store.dispatch(
            Action("scoped/variable_set", {"scope": scope, "name": name, "value": text})
        )

    def fetch_scoped_variables(self) -> None:
        """Re-read the scoped variables from the run log."""
        fetch_scoped_variables(self)

    # -- cache and cost ------------------------------------------------------------------------

    def _cache_lookup(self, key: str | None) -> dict[str, Any] | None:
        if key is None:
            return None
        hit = self._response_cache.get(key)
        if hit is not None:
            return hit
        # earlier sessions' replies; this session's are in the dict, so no flush is needed
        rows = self.runlog.arrow(
            "SELECT response, input_tokens, output_tokens FROM runs WHERE cache_key = ? "
            "AND status = 'success' ORDER BY finished_at DESC LIMIT 1",
            [key],
            flush=False,
        ).to_pylist()
        if not rows:
            return None
        hit = dict(rows[0])
        self._response_cache[key] = hit
        return hit

    def _cache_store(self, key: str, result: RunResult) -> None:
        self._response_cache[key] = {
            "response": result.response,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
        }

    def _cost(self, payload: Mapping[str, Any], usage: list[int | None]) -> float | None:
        price = self.prices.get(f"{payload['provider']}:{payload['model']}")
        if price is None or usage[0] is None or usage[1] is None:
            return None
        return (usage[0] * price[0] + usage[1] * price[1]) / 1_000_000

    # -- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Cancel runs in flight, close provider clients and the run log."""
        for rid, task in list(self._tasks.items()):
            self._cancel_requested.add(rid)
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks.values(), return_exceptions=True)
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
            f"Session(db={self.db!r}, instances={len(st.instance_ids)}, "
            f"prompts_cached={len([k for k in st.prompts if '@' not in k])})"
        )


class Instance:
    """A handle on one prompt instance: holds only its id and reads through selectors."""

    __slots__ = ("_session", "id")

    def __init__(self, session: Session, instance_id: str) -> None:
        self._session = session
        self.id = instance_id

    @property
    def session(self) -> Session:
        """The owning session."""
        return self._session

    def _state(self) -> State:
        return self._session.store.get_state()

    @property
    def prompt(self) -> Prompt:
        """The prompt version this instance runs."""
        return select_prompt_entry(self._state(), self.id).prompt

    @property
    def variables(self) -> MergedVariables:
        """Merged variables with provenance: ``{name: VariableValue(value, source)}``."""
        return select_merged_variables(self._state(), self.id)

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        """The conversation as shown (rendered prompt, history, live partial reply)."""
        return select_display_messages(self._state(), self.id)

    @property
    def status(self) -> str:
        """``idle``, ``queued``, ``running``, ``success``, ``error`` or ``cancelled``."""
        return select_instance(self._state(), self.id).status

    @property
    def model(self) -> str:
        """The model string a send would use now."""
        inst = select_instance(self._state(), self.id)
        return inst.model or self.prompt.model

    @property
    def last_run(self) -> RunResult | None:
        """The run in flight, else the latest finished one."""
        run = select_last_run(self._state(), self.id)
        return None if run is None else RunResult.from_run(run)

    def set_variable(self, name: str, value: object) -> None:
        """Set the instance's own value for ``name`` (dispatches ``instances/variable_set``)."""
        self.set_variables({name: value})

    def set_variables(self, values: Mapping[str, object]) -> None:
        """Set several values in one action."""
        select_instance(self._state(), self.id)
        clean = {_check_name(k): normalize_value(k, v) for k, v in values.items()}
        unused = sorted(set(clean) - self.prompt.used_variables)
        if unused:
            warnings.warn(
                f"prompt {self.prompt.id!r} never uses variable(s) {', '.join(unused)}",
                UnusedVariableWarning,
                stacklevel=3,
            )
        if len(clean) == 1:
            ((name, value),) = clean.items()
            self._session.store.dispatch(
                Action(
                    "instances/variable_set", {"instance_id": self.id, "name": name, "value": value}
                )
            )
        elif clean:
            self._session.store.dispatch(
                Action("instances/variables_set", {"instance_id": self.id, "values": clean})
            )

    def unset_variable(self, name: str) -> None:
        """Drop the instance's own value, falling back to scoped values or the default."""
        select_instance(self._state(), self.id)
        self._session.store.dispatch(
            Action("instances/variable_unset", {"instance_id": self.id, "name": name})
        )

    def set_model(self, model: str | None) -> None:
        """Use another model for the next sends (``None`` returns to the prompt's)."""
        if model is not None:
            self._session.providers.resolve(model)
        self._session.store.dispatch(
            Action("instances/model_set", {"instance_id": self.id, "model": model})
        )

    def clear_history(self) -> None:
        """Forget the conversation turns (the run log keeps them)."""
        self._session.store.dispatch(Action("instances/history_cleared", {"instance_id": self.id}))

    async def send(
        self,
        content: str | None = None,
        *,
        model: str | None = None,
        settings: Mapping[str, Any] | None = None,
        cache: bool | None = None,
    ) -> RunResult:
        """Render from the live state now, call the model, return the finished run.

        ``content=None`` runs the prompt itself (a fresh single turn); a string
        continues the conversation with that user message. Variables changed while the
        run is in flight do not alter it; they apply to the next send.
        """
        return await execute_message(
            self._session, self.id, content, model=model, settings=settings, cache=cache
        )

    def send_soon(
        self,
        content: str | None = None,
        *,
        variables: Mapping[str, object] | None = None,
        model: str | None = None,
    ) -> concurrent.futures.Future[RunResult]:
        """Thread-safe, non-blocking send for widget callbacks.

        ``variables`` (the inputs' values at the click) are applied as actions first,
        on the calling thread, so a value typed just before the click is never lost.
        """
        if variables:
            self.set_variables(variables)
        return self._session.spawn(self.send(content, model=model))

    def cancel(self) -> bool:
        """Cancel the run in flight (thread-safe); returns whether there was one."""
        inst = select_instance(self._state(), self.id)
        rid = inst.current_request_id
        if rid is None:
            return False
        # Recorded first: a run still writing its 'running' row checks this flag before
        # the call goes out, so a cancel in that window is not lost.
        self._session._cancel_requested.add(rid)
        task = self._session._tasks.get(rid)
        if task is None:
            return True
        loop = task.get_loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            task.cancel()
        else:
            loop.call_soon_threadsafe(task.cancel)
        return True

    def close(self) -> None:
        """Remove the instance from the store (cancels its run in flight)."""
        self.cancel()
        self._session.store.dispatch(Action("instances/closed", {"instance_id": self.id}))
        select_merged_variables.forget(self.id)  # keep the caches as small as the store
        select_display_messages.forget(self.id)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Instance) and other.id == self.id and other._session is self._session
        )

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        try:
            inst = select_instance(self._state(), self.id)
        except Exception:
            return f"Instance({self.id!r}, closed)"
        return f"Instance({self.id!r}, prompt={inst.prompt_id!r}, status={inst.status!r})"

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        try:
            from promptstate.widgets import PromptRunner
        except Exception:  # widgets unavailable: plain text repr
            return {"text/plain": repr(self)}
        return PromptRunner(self)._repr_mimebundle_(**kwargs)
