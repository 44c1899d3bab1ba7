"""Effects (thunks): the only code that does I/O.

Each effect receives ``dispatch`` and ``get_state`` (through the session), reads the
live state again after every ``await``, and puts everything it learned (prompt
definitions, DB rows, model output) into action payloads, so a replay of the actions
reproduces the state without calling anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from promptstate.core.selectors import select_instance, select_merged_variables, select_prompt_entry
from promptstate.core.state import Action, ChatMessage, PromptEntry, RunState
from promptstate.errors import (
    InstanceBusyError,
    MissingVariablesError,
    PromptStateError,
    ProviderError,
)
from promptstate.models.template import parse

if TYPE_CHECKING:
    from promptstate.session.session import Session

__all__ = [
    "RunResult",
    "complete_execution",
    "execute_message",
    "fetch_prompt",
    "fetch_scoped_variables",
    "run_row",
    "start_instance",
]

# Streaming text reaches the store at most this often (the final text is always exact).
CHUNK_INTERVAL = 0.04


@dataclass(frozen=True)
class RunResult:
    """What one send produced (also a row of the ``runs`` table).

    Attributes
    ----------
    run_id, instance_id, prompt_id, prompt_version, provider, model : str
    status : str
        ``success``, ``error`` or ``cancelled``.
    response : str
        The reply text (partial for cancelled/error runs that streamed some text).
    error : str or None
    input_tokens, output_tokens : int or None
    latency_ms, ttft_ms : float or None
    attempts : int
    cache_key : str or None
    cache_hit : bool
    cost_usd : float or None
    messages : tuple of ChatMessage
        The rendered request exactly as sent.
    variables : dict
        ``{name: (value, source)}`` as sent.
    """

    run_id: str
    instance_id: str
    prompt_id: str
    prompt_version: str
    provider: str
    model: str
    status: str
    response: str
    error: str | None
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    ttft_ms: float | None
    attempts: int
    cache_key: str | None
    cache_hit: bool
    cost_usd: float | None
    messages: tuple[ChatMessage, ...]
    variables: dict[str, tuple[str, str]]

    @classmethod
    def from_run(cls, run: RunState) -> RunResult:
        """Build from the store's run entity."""
        return cls(
            run_id=run.run_id,
            instance_id=run.instance_id,
            prompt_id=run.prompt_id,
            prompt_version=run.prompt_version,
            provider=run.provider,
            model=run.model,
            status=run.status,
            response=run.text,
            error=run.error,
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            latency_ms=run.latency_ms,
            ttft_ms=run.ttft_ms,
            attempts=run.attempts,
            cache_key=run.cache_key,
            cache_hit=run.cache_hit,
            cost_usd=run.cost_usd,
            messages=run.messages,
            variables={n: (v, s) for n, v, s in run.variables},
        )

    def __repr__(self) -> str:
        resp = self.response if len(self.response) <= 60 else self.response[:57] + "..."
        extra = f", error={self.error!r}" if self.error else ""
        return (
            f"RunResult(status={self.status!r}, response={resp!r}, model={self.provider}:"
            f"{self.model}, latency_ms={self.latency_ms}, run_id={self.run_id!r}{extra})"
        )


def run_row(run: RunState) -> dict[str, Any]:
    """The ``runs`` table row for a run entity."""
    from promptstate.runlog.log import utc

    return {
        "run_id": run.run_id,
        "instance_id": run.instance_id,
        "prompt_id": run.prompt_id,
        "prompt_version": run.prompt_version,
        "provider": run.provider,
        "model": run.model,
        "status": "running" if run.status == "queued" else run.status,
        "variables": json.dumps(
            {n: {"value": v, "source": s} for n, v, s in run.variables}, ensure_ascii=False
        ),
        "messages": json.dumps(
            [{"role": m.role, "content": m.content} for m in run.messages], ensure_ascii=False
        ),
        "response": run.text,
        "error": run.error,
        "input_tokens": run.input_tokens,
        "output_tokens": run.output_tokens,
        "latency_ms": run.latency_ms,
        "ttft_ms": run.ttft_ms,
        "started_at": utc(run.started_at),
        "finished_at": utc(run.finished_at),
        "sweep_id": run.sweep_id,
        "action_index": run.action_index,
        "state_hash": run.state_hash,
        "attempts": run.attempts,
        "cost_usd": run.cost_usd,
        "cache_key": run.cache_key,
        "cache_hit": run.cache_hit,
        "settings": json.dumps(dict(run.settings), ensure_ascii=False),
    }


# -- start_instance ------------------------------------------------------------------------


def fetch_prompt(session: Session, prompt_id: str, *, refresh: bool = False) -> PromptEntry:
    """The cached prompt entry; fetched from its source only if absent (or ``refresh``)."""
    dispatch, get_state = session.store.dispatch, session.store.get_state
    if refresh or prompt_id not in get_state().prompts:
        request_id = uuid.uuid4().hex
        dispatch(
            Action("prompts/fetch_pending", {"prompt_id": prompt_id, "request_id": request_id})
        )
        try:
            prompt, source = session.prompts._fetch(prompt_id)
        except PromptStateError as exc:
            dispatch(
                Action(
                    "prompts/fetch_rejected",
                    {"prompt_id": prompt_id, "request_id": request_id, "error": str(exc)},
                )
            )
            raise
        dispatch(
            Action(
                "prompts/fetch_fulfilled",
                {
                    "prompt": prompt.to_dict(),
                    "source": source,
                    "at": time.time(),
                    "request_id": request_id,
                },
            )
        )
    return get_state().prompts[prompt_id]


def start_instance(
    session: Session,
    prompt_id: str,
    values: Mapping[str, str],
    *,
    model: str | None,
    track_in_runs: bool,
    refresh: bool,
) -> str:
    """Fetch the prompt unless cached (``refresh`` forces it), then start an instance."""
    entry = fetch_prompt(session, prompt_id, refresh=refresh)
    iid = uuid.uuid4().hex[:12]
    session.store.dispatch(
        Action(
            "instances/started",
            {
                "instance_id": iid,
                "prompt_id": prompt_id,
                "prompt_version": entry.prompt.version,
                "model": model,
                "values": dict(values),
                "track_in_runs": track_in_runs,
                "at": time.time(),
            },
        )
    )
    return iid


# -- scoped variables ----------------------------------------------------------------------


def fetch_scoped_variables(session: Session) -> None:
    """Read the user/org/project layers from the run log into the store."""
    dispatch = session.store.dispatch
    request_id = uuid.uuid4().hex
    ids = {"user_id": session.user_id, "org_id": session.org_id, "project_id": session.project_id}
    dispatch(Action("scoped/fetch_pending", {"request_id": request_id, **ids}))
    try:
        layers = session.runlog.fetch_scoped(session.user_id, session.org_id, session.project_id)
    except PromptStateError as exc:
        dispatch(Action("scoped/fetch_rejected", {"request_id": request_id, "error": str(exc)}))
        raise
    dispatch(Action("scoped/fetch_fulfilled", {"request_id": request_id, **layers}))


# -- execute_message -----------------------------------------------------------------------


def _cache_key(
    provider: str, model: str, messages: list[dict[str, str]], settings: Mapping[str, Any]
) -> str:
    raw = json.dumps(
        {"provider": provider, "model": model, "messages": messages, "settings": dict(settings)},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _instance_hash(
    variables: list[tuple[str, str, str]], history: tuple[ChatMessage, ...], version: str
) -> str:
    # values, not their sources: a restored instance holds the same values as its own
    pairs = sorted((n, v) for n, v, _ in variables)
    raw = json.dumps(
        {"v": pairs, "h": [(m.role, m.content) for m in history], "p": version},
        ensure_ascii=False,
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _prepare(
    session: Session,
    instance_id: str,
    content: str | None,
    model: str | None,
    settings: Mapping[str, Any] | None,
    cache: bool,
    sweep_id: str | None,
) -> tuple[dict[str, Any], Any]:
    """Render from the live state and build the pending payload (raises before any I/O)."""
    state = session.store.get_state()
    inst = select_instance(state, instance_id)
    if inst.current_request_id is not None:
        raise InstanceBusyError(
            f"instance {instance_id!r} already has run {inst.current_request_id!r} in flight; "
            "await it or call inst.cancel()"
        )
    entry = select_prompt_entry(state, instance_id)
    prompt = entry.prompt
    merged = select_merged_variables(state, instance_id)
    used = prompt.used_variables
    missing = [n for n in used if merged[n].value is None]
    if missing:
        raise MissingVariablesError(missing, prompt.id)
    values = {n: v.value for n, v in merged.items() if v.value is not None}
    messages = [
        {"role": m.role, "content": parse(m.content).render(values)} for m in prompt.messages
    ]
    if content is not None:
        messages += [{"role": m.role, "content": m.content} for m in inst.history]
        messages.append({"role": "user", "content": content})
    model_str = model or inst.model or prompt.model
    provider_name, model_name, provider = session.providers.resolve(model_str)
    merged_settings = {**prompt.settings, **(settings or {})}
    if provider_name != "echo":
        # echo_* knobs are for the offline provider only; never sent to a real API
        merged_settings = {k: v for k, v in merged_settings.items() if not k.startswith("echo_")}
    variables = [(n, v.value, v.source) for n, v in merged.items() if v.value is not None]
    # hashing the whole request costs ~40 us per send; only a cached send needs the key
    key = _cache_key(provider_name, model_name, messages, merged_settings) if cache else None
    payload = {
        "request_id": uuid.uuid4().hex,
        "instance_id": instance_id,
        "prompt_id": prompt.id,
        "prompt_version": prompt.version,
        "provider": provider_name,
        "model": model_name,
        "variables": variables,
        "messages": messages,
        "user_content": content,
        "settings": merged_settings,
        "cache_key": key,
        "action_index": session.store.action_count,
        "state_hash": _instance_hash(
            variables, inst.history if content is not None else (), prompt.version
        ),
        "sweep_id": sweep_id,
        "tracked": inst.track_in_runs,
        "at": time.time(),
    }
    if inst.track_in_runs:
        session.runlog.save_prompt(prompt.to_dict(), entry.source)
    return payload, provider


async def execute_message(
    session: Session,
    instance_id: str,
    content: str | None = None,
    *,
    model: str | None = None,
    settings: Mapping[str, Any] | None = None,
    cache: bool | None = None,
    sweep_id: str | None = None,
    precancelled: bool = False,
) -> RunResult:
    """Render from the live state, call the provider, stream into the store, log the run.

    Raises typed errors (missing variables, unknown provider, busy instance) before
    anything is logged; once the run is pending it always ends in a terminal status.
    """
    from promptstate.providers._base import AttemptStarted, ChatRequest, TextDelta, UsageInfo

    use_cache = session.cache if cache is None else cache
    payload, provider = _prepare(
        session, instance_id, content, model, settings, use_cache, sweep_id
    )
    store_dispatch, get_state = session.store.dispatch, session.store.get_state

    def dispatch(action: Any) -> Any:
        # every run lifecycle action names its instance (devtools filters on it)
        if isinstance(action, Action) and isinstance(action.payload, dict):
            action.payload.setdefault("instance_id", instance_id)
        return store_dispatch(action)

    rid: str = payload["request_id"]
    dispatch(Action("runs/execute_pending", payload))
    if precancelled:  # a sweep cell cancelled while queued: log it, never call the model
        session._cancel_requested.add(rid)
    tracked = bool(payload["tracked"])
    hit: dict[str, Any] | None = None
    pieces: list[str] = []
    usage: list[int | None] = [None, None]
    attempts = [0]
    t_start = [0.0]
    ttft: list[float | None] = [None]

    async def consume() -> None:
        # Everything after 'pending' runs in this task, so one set of handlers below
        # ends the run whatever interrupts it (a cancel while the row is written included).
        nonlocal hit
        if tracked:  # the 'running' row is durable before the call goes out
            row = run_row(get_state().runs[rid])
            await asyncio.shield(asyncio.wrap_future(session.runlog.write_run(row)))
        if use_cache:  # a DB lookup: off the loop
            hit = await asyncio.to_thread(session._cache_lookup, payload["cache_key"])
        if hit is not None:
            dispatch(Action("runs/execute_started", {"request_id": rid, "at": time.time()}))
            pieces.append(hit["response"])
            usage[0], usage[1] = hit["input_tokens"], hit["output_tokens"]
            return
        request = ChatRequest(
            model=payload["model"],
            messages=tuple(payload["messages"]),
            settings=payload["settings"],
            stream=bool(payload["settings"].get("stream", True)),
        )
        async with session._semaphore(provider):
            t_start[0] = time.perf_counter()
            dispatch(Action("runs/execute_started", {"request_id": rid, "at": time.time()}))
            pending_text: list[str] = []
            last_flush = 0.0
            stream = provider.stream(request)
            async with contextlib.aclosing(stream):
                async for ev in stream:
                    if isinstance(ev, TextDelta):
                        if not ev.text:
                            continue
                        now = time.perf_counter()
                        if ttft[0] is None:
                            ttft[0] = (now - t_start[0]) * 1000
                        pieces.append(ev.text)
                        pending_text.append(ev.text)
                        if now - last_flush >= CHUNK_INTERVAL:
                            _flush_chunks(dispatch, rid, pending_text, ttft[0])
                            pending_text = []
                            last_flush = now
                    elif isinstance(ev, UsageInfo):
                        usage[0], usage[1] = ev.input_tokens, ev.output_tokens
                    elif isinstance(ev, AttemptStarted):
                        attempts[0] = ev.attempt
                        dispatch(
                            Action(
                                "runs/attempt_started",
                                {"request_id": rid, "attempt": ev.attempt, "reason": ev.reason},
                            )
                        )
            if pending_text:
                _flush_chunks(dispatch, rid, pending_text, ttft[0])

    def elapsed() -> float | None:
        return (time.perf_counter() - t_start[0]) * 1000 if t_start[0] else None

    def finish(action_type: str, **extra: Any) -> None:
        dispatch(
            Action(
                action_type,
                {
                    "request_id": rid,
                    "response": "".join(pieces),
                    "input_tokens": usage[0],
                    "output_tokens": usage[1],
                    "latency_ms": elapsed(),
                    "ttft_ms": ttft[0],
                    "attempts": attempts[0],
                    "cost_usd": session._cost(payload, usage),
                    "at": time.time(),
                    **extra,
                },
            )
        )

    task = asyncio.get_running_loop().create_task(consume())
    session._tasks[rid] = task
    if rid in session._cancel_requested:  # cancelled before the call went out
        task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        user_cancel = rid in session._cancel_requested
        task.cancel()
        finish(
            "runs/execute_rejected",
            status="cancelled",
            error="cancelled by the user" if user_cancel else "cancelled",
        )
        result = await complete_execution(session, rid)
        if not user_cancel:
            raise
        return result
    except ProviderError as exc:
        finish(
            "runs/execute_rejected",
            status="error",
            error=f"{type(exc).__name__}: {exc}",
            attempts=max(attempts[0], exc.attempts),
        )
    except Exception as exc:  # anything unexpected still ends the run, with the reason
        finish("runs/execute_rejected", status="error", error=f"{type(exc).__name__}: {exc}")
    else:
        if hit is not None:
            cached = {"latency_ms": 0.0, "ttft_ms": 0.0, "cache_hit": True, "cost_usd": 0.0}
            finish("runs/execute_fulfilled", **cached)
        else:
            finish("runs/execute_fulfilled")
    finally:
        session._tasks.pop(rid, None)
        session._cancel_requested.discard(rid)
    result = await complete_execution(session, rid)
    if result.status == "success" and hit is None and payload["cache_key"]:
        session._cache_store(payload["cache_key"], result)
    return result


def _flush_chunks(dispatch: Any, rid: str, pending: list[str], ttft: float | None) -> None:
    dispatch(
        Action(
            "runs/chunk_received",
            {"request_id": rid, "text": "".join(pending), "n": len(pending), "ttft_ms": ttft},
        )
    )


async def complete_execution(session: Session, run_id: str) -> RunResult:
    """Write the terminal row of a finished run and return its result."""
    run = session.store.get_state().runs.get(run_id)
    if run is None:  # pragma: no cover - reducers keep a finished run until the next one
        raise PromptStateError(f"run {run_id!r} vanished from the store")
    if run.tracked:
        fut = session.runlog.write_run(run_row(run))
        with contextlib.suppress(asyncio.CancelledError):
            # shielded: a second cancel must not lose the terminal row (the writer
            # thread commits it regardless; we only stop waiting)
            await asyncio.shield(asyncio.wrap_future(fut))
    return RunResult.from_run(run)
