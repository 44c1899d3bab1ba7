"""Executing a recorded send: call the provider, stream into the store, log the run.

The request was fixed by :func:`~promptstate.engine.send.begin_send`; this module only
reads it back from the action. Everything after the pending action runs in one task with
one set of handlers, so a run that started always ends in a terminal status, whatever
interrupts it (a cancel while its first row is written included).

One commit per send: the ``running`` row is handed to the run log *deferred* (written only
if the run is still in flight after the writer's ``DEFER_WINDOW``, so a crash then leaves
it ``interrupted``) and the call goes out at once; the terminal row is awaited, so a run
reported done is on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from promptstate.core.actions import (
    AttemptStarted,
    ChunkReceived,
    ExecuteFulfilled,
    ExecuteRejected,
    ExecuteStarted,
)
from promptstate.core.state import RunState, prompt_key
from promptstate.engine.gcpause import runs_in_flight
from promptstate.engine.ports import Runtime
from promptstate.engine.send import PreparedSend
from promptstate.errors import PromptStateError, ProviderError
from promptstate.models import provider as pb
from promptstate.models.redact import redact
from promptstate.models.run import RunResult, make_result
from promptstate.models.values import ChatMessage

__all__ = ["CHUNK_INTERVAL", "describe_error", "execute", "run_result", "without_tracebacks"]

# Streaming text reaches the store at most this often (the final text is always exact).
CHUNK_INTERVAL = 0.04


def without_tracebacks(exc: BaseException | None) -> BaseException | None:
    """``exc`` and its chain with their tracebacks dropped (kept by a result)."""
    # A result keeps its typed error for raise_for_status(), not the frames it was raised
    # in: a traceback pins the whole failed call (stream, response, buffers) in memory
    # for as long as anyone holds the result, e.g. every cell of a long sweep.
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        e.__traceback__ = None
        todo += [e.__cause__, e.__context__]
    return exc


def run_result(run: RunState, exception: BaseException | None = None) -> RunResult:
    """The public result (a ``runs`` row) of the store's run entity."""
    return make_result(
        dict(
            run_id=run.run_id,
            instance_id=run.instance_id,
            prompt_id=run.prompt_id,
            prompt_version=run.prompt_version,
            provider=run.provider,
            model=run.model,
            status="running" if run.status == "queued" else run.status,
            variables={n: (v, s) for n, v, s in run.variables},
            # the request as sent (and as the log stores it): roles and texts only
            messages=tuple(ChatMessage(m.role, m.content) for m in run.messages),
            response=run.response,
            error=run.error,
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            latency_ms=run.latency_ms,
            ttft_ms=run.ttft_ms,
            started_at=run.started_at,
            finished_at=run.finished_at,
            sweep_id=run.sweep_id,
            action_index=run.action_index,
            state_hash=run.state_hash,
            attempts=run.attempts,
            cost_usd=run.cost_usd,
            cache_key=run.cache_key,
            cache_hit=run.cache_hit,
            settings=dict(run.settings),
            session_id=run.session_id,
            error_type=run.error_type,
            exception=without_tracebacks(exception),
        )
    )


def describe_error(exc: BaseException) -> str:
    """``"Type: message"``, redacted (the text a run's ``error`` column stores)."""
    # redacted before anything can cut it: no prefix of a key survives truncation
    return redact(f"{type(exc).__name__}: {exc}")


async def execute(
    rt: Runtime,
    prepared: PreparedSend,
    *,
    precancelled: bool = False,
    concurrency: int | None = None,
) -> RunResult:
    """Run a recorded send to its end and return the finished run.

    ``concurrency`` (a sweep's) replaces the provider's own ``max_concurrency`` as the
    number of calls in flight at once for this send's slot pool.
    """
    action = prepared.action
    provider = prepared.provider
    rid, iid = action.request_id, action.instance_id
    store = rt.store
    if precancelled:  # a sweep cell cancelled while queued: log it, never call the model
        rt.tasks.cancel(rid)
    pieces: list[str] = []
    usage: list[int | None] = [None, None]
    attempts = [0]
    t_start = [0.0]
    ttft: list[float | None] = [None]
    hit: list[dict[str, Any] | None] = [None]

    async def consume() -> None:
        if action.tracked:  # 'running' row deferred: no commit for a run that ends soon
            state = store.present_state()  # not a past state the devtools may show
            entry = state.prompts.get(prompt_key(action.prompt_id, action.prompt_version))
            if entry is not None:
                rt.sink.save_prompt(entry.prompt.to_dict(), entry.source)
            run = state.runs[rid]  # this snapshot, built only if the row is written
            rt.sink.write_running(rid, lambda: run_result(run))
        if action.cache_key is not None:  # a DB lookup: off the loop
            hit[0] = await asyncio.to_thread(rt.cache.lookup, action.cache_key)
        if hit[0] is not None:
            store.dispatch(ExecuteStarted(request_id=rid, instance_id=iid, at=rt.clock()))
            pieces.append(hit[0]["response"] or "")
            usage[0], usage[1] = hit[0]["input_tokens"], hit[0]["output_tokens"]
            return
        request = pb.ChatRequest(
            model=action.model,
            messages=tuple({"role": m.role, "content": m.content} for m in action.messages),
            settings=action.settings,
            stream=bool(action.settings.get("stream", True)),
        )
        async with rt.tasks.semaphore(provider, concurrency):
            t_start[0] = time.perf_counter()
            store.dispatch(ExecuteStarted(request_id=rid, instance_id=iid, at=rt.clock()))
            pending: list[str] = []
            # Nobody subscribed: no view to stream into, so the text reaches the store
            # every CHUNK_INTERVAL only, counted from the first text (the terminal action
            # carries it exactly): a reply that arrives in one read costs no chunk action.
            quiet = store.listener_count == 0
            last_flush = 0.0
            stream = provider.stream(request)
            async with contextlib.aclosing(stream):  # type: ignore[type-var]
                async for ev in stream:
                    if isinstance(ev, pb.TextDelta):
                        if not ev.text:
                            continue
                        now = time.perf_counter()
                        if ttft[0] is None:
                            ttft[0] = (now - t_start[0]) * 1000
                            if quiet:
                                last_flush = now
                        pieces.append(ev.text)
                        pending.append(ev.text)
                        if now - last_flush >= CHUNK_INTERVAL:
                            _flush(rt, rid, iid, pending, ttft[0])
                            pending = []
                            last_flush = now
                    elif isinstance(ev, pb.UsageInfo):
                        usage[0], usage[1] = ev.input_tokens, ev.output_tokens
                    elif isinstance(ev, pb.AttemptStarted):
                        attempts[0] = ev.attempt
                        if ev.attempt == 1 and ev.reason is None:
                            continue  # the first try says nothing the terminal row won't
                        store.dispatch(
                            AttemptStarted(
                                request_id=rid,
                                instance_id=iid,
                                attempt=ev.attempt,
                                reason=ev.reason,
                            )
                        )
            if pending and not quiet:
                _flush(rt, rid, iid, pending, ttft[0])

    def elapsed() -> float | None:
        return (time.perf_counter() - t_start[0]) * 1000 if t_start[0] else None

    def common() -> dict[str, Any]:
        return {
            "request_id": rid,
            "instance_id": iid,
            "response": "".join(pieces),
            "input_tokens": usage[0],
            "output_tokens": usage[1],
            "latency_ms": elapsed(),
            "ttft_ms": ttft[0],
            "attempts": attempts[0],
            "cost_usd": rt.cost(action.provider, action.model, (usage[0], usage[1])),
            "at": rt.clock(),
        }

    def reject(status: str, exc: BaseException | None, error: str, **extra: Any) -> None:
        fields = {**common(), **extra}
        fields["error_type"] = type(exc).__name__ if isinstance(exc, PromptStateError) else None
        store.dispatch(ExecuteRejected(status=status, error=error, **fields))

    # the GC's young trigger is raised until the run ends (engine/gcpause.py)
    with runs_in_flight():
        task = asyncio.get_running_loop().create_task(consume())
        rt.tasks.add(rid, task)
        if rt.tasks.cancel_requested(rid):  # cancelled before the call went out
            task.cancel()
        failure: BaseException | None = None
        try:
            await task
        except asyncio.CancelledError:
            user_cancel = rt.tasks.cancel_requested(rid)
            task.cancel()
            reject("cancelled", None, "cancelled by the user" if user_cancel else "cancelled")
            result = await _complete(rt, rid, None)
            rt.tasks.discard(rid)
            if not user_cancel:
                raise
            return result
        except ProviderError as exc:
            failure = exc
            reject("error", exc, describe_error(exc), attempts=max(attempts[0], exc.attempts))
        except Exception as exc:  # anything unexpected still ends the run, with the reason
            failure = exc
            reject("error", exc, describe_error(exc))
        else:
            if hit[0] is not None:
                fields = {**common(), "latency_ms": 0.0, "ttft_ms": 0.0, "cost_usd": 0.0}
                store.dispatch(ExecuteFulfilled(cache_hit=True, **fields))
            else:
                store.dispatch(ExecuteFulfilled(**common()))
        finally:
            rt.tasks.discard(rid)
        result = await _complete(rt, rid, failure)
        if result.status == "success" and hit[0] is None and action.cache_key:
            rt.cache.store(action.cache_key, result)
        return result


def _flush(rt: Runtime, rid: str, iid: str, pending: list[str], ttft: float | None) -> None:
    rt.store.dispatch(
        ChunkReceived(
            request_id=rid, instance_id=iid, text="".join(pending), n=len(pending), ttft_ms=ttft
        )
    )


async def _complete(rt: Runtime, run_id: str, exception: BaseException | None) -> RunResult:
    """Write the terminal row of a finished run and return its result."""
    run = rt.store.present_state().runs.get(run_id)  # not a past state on show
    if run is None:  # pragma: no cover - reducers keep a finished run until the next one
        raise PromptStateError(f"run {run_id!r} vanished from the store")
    result = run_result(run, exception)
    if run.tracked:
        fut = rt.sink.write_run(result)
        with contextlib.suppress(asyncio.CancelledError):
            # shielded: a second cancel must not lose the terminal row (the writer
            # thread commits it regardless; we only stop waiting)
            await asyncio.shield(asyncio.wrap_future(fut))
    return result
