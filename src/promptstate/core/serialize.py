"""State tree <-> JSON-ready dicts (devtools export/import), with strict validation."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import immutables

from promptstate.core.codec import check_json
from promptstate.core.state import (
    InstanceState,
    PromptEntry,
    RunState,
    ScopedState,
    State,
    SweepState,
)
from promptstate.errors import InvalidPromptError, StateImportError, TemplateError
from promptstate.models.prompt import prompt_from_dict
from promptstate.models.values import ChatMessage

__all__ = ["state_from_dict", "state_to_dict"]

T = TypeVar("T")


def _msg(m: ChatMessage) -> dict[str, Any]:
    out = {"role": m.role, "content": m.content, "run_id": m.run_id}
    if m.status is not None:
        out["status"] = m.status
    return out


def state_to_dict(state: State) -> dict[str, Any]:
    """A JSON-ready dict of the whole state (round-trips through :func:`state_from_dict`)."""
    return {
        "prompts": {
            k: {"prompt": e.prompt.to_dict(), "source": e.source, "fetched_at": e.fetched_at}
            for k, e in state.prompts.items()
        },
        "instance_ids": list(state.instance_ids),
        "instances": {
            k: {
                "id": i.id,
                "prompt_id": i.prompt_id,
                "prompt_version": i.prompt_version,
                "model": i.model,
                "values": dict(i.values),
                "given": sorted(i.given),
                "history": [_msg(m) for m in i.history],
                "status": i.status,
                "current_request_id": i.current_request_id,
                "last_run_id": i.last_run_id,
                "track_in_runs": i.track_in_runs,
                "created_at": i.created_at,
                "error": i.error,
            }
            for k, i in state.instances.items()
        },
        "scoped": {
            "user_id": state.scoped.user_id,
            "org_id": state.scoped.org_id,
            "project_id": state.scoped.project_id,
            "user": dict(state.scoped.user),
            "org": dict(state.scoped.org),
            "project": dict(state.scoped.project),
            "status": state.scoped.status,
            "request_id": state.scoped.request_id,
            "error": state.scoped.error,
        },
        "runs": {k: _run_to_dict(r) for k, r in state.runs.items()},
        "sweeps": {
            k: {
                "prompt_id": w.prompt_id,
                "total": w.total,
                "done": w.done,
                "errors": w.errors,
                "cancelled": w.cancelled,
                "sent": w.sent,
            }
            for k, w in state.sweeps.items()
        },
    }


def _run_to_dict(r: RunState) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "instance_id": r.instance_id,
        "prompt_id": r.prompt_id,
        "prompt_version": r.prompt_version,
        "provider": r.provider,
        "model": r.model,
        "status": r.status,
        "variables": [list(v) for v in r.variables],
        "messages": [_msg(m) for m in r.messages],
        "user_content": r.user_content,
        "started_at": r.started_at,
        "settings": dict(r.settings),
        "response": r.response,
        "error_type": r.error_type,
        "session_id": r.session_id,
        "chunks": r.chunks,
        "error": r.error,
        "attempts": r.attempts,
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
        "running_at": r.running_at,
        "finished_at": r.finished_at,
        "cache_key": r.cache_key,
        "cache_hit": r.cache_hit,
        "cost_usd": r.cost_usd,
        "action_index": r.action_index,
        "state_hash": r.state_hash,
        "sweep_id": r.sweep_id,
        "tracked": r.tracked,
    }


# -- validation helpers ------------------------------------------------------------------------


def _get(d: Mapping[str, Any], key: str, typ: type[T] | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, Mapping):
        raise StateImportError(f"{where}: expected an object")
    if key not in d:
        raise StateImportError(f"{where}: missing field {key!r}")
    val = d[key]
    if not isinstance(val, typ) or (isinstance(val, bool) and typ in (int, float, (int, float))):
        raise StateImportError(f"{where}.{key}: wrong type {type(val).__name__}")
    return val


def _opt(d: Mapping[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    val = d.get(key)
    if val is not None and not isinstance(val, typ):
        raise StateImportError(f"{where}.{key}: wrong type {type(val).__name__}")
    return val


def _str_map(d: Any, where: str) -> immutables.Map[str, str]:
    if not isinstance(d, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in d.items()
    ):
        raise StateImportError(f"{where}: expected an object of strings")
    return immutables.Map(d)


def _messages(items: Any, where: str) -> tuple[ChatMessage, ...]:
    if not isinstance(items, list):
        raise StateImportError(f"{where}: expected a list")
    out = []
    for i, m in enumerate(items):
        w = f"{where}[{i}]"
        out.append(
            ChatMessage(
                _get(m, "role", str, w),
                _get(m, "content", str, w),
                _opt(m, "run_id", str, w),
                _opt(m, "status", str, w),
            )
        )
    return tuple(out)


def _each(d: Any, where: str, fn: Callable[[Any, str], T]) -> immutables.Map[str, T]:
    if not isinstance(d, Mapping):
        raise StateImportError(f"{where}: expected an object")
    return immutables.Map({str(k): fn(v, f"{where}[{k!r}]") for k, v in d.items()})


def _prompt_entry(d: Any, where: str) -> PromptEntry:
    try:
        prompt = prompt_from_dict(_get(d, "prompt", dict, where), where)
    except (InvalidPromptError, TemplateError) as exc:
        raise StateImportError(f"{where}: {exc}") from None
    return PromptEntry(
        prompt, _get(d, "source", str, where), float(_get(d, "fetched_at", (int, float), where))
    )


def _instance(d: Any, where: str) -> InstanceState:
    given = _get(d, "given", list, where)
    if not all(isinstance(g, str) for g in given):
        raise StateImportError(f"{where}.given: expected strings")
    return InstanceState(
        id=_get(d, "id", str, where),
        prompt_id=_get(d, "prompt_id", str, where),
        prompt_version=_get(d, "prompt_version", str, where),
        model=_opt(d, "model", str, where),
        values=_str_map(_get(d, "values", dict, where), f"{where}.values"),
        given=frozenset(given),
        history=_messages(_get(d, "history", list, where), f"{where}.history"),
        status=_get(d, "status", str, where),
        current_request_id=_opt(d, "current_request_id", str, where),
        last_run_id=_opt(d, "last_run_id", str, where),
        track_in_runs=_get(d, "track_in_runs", bool, where),
        created_at=float(_get(d, "created_at", (int, float), where)),
        error=_opt(d, "error", str, where),
    )


def _run(d: Any, where: str) -> RunState:
    variables = _get(d, "variables", list, where)
    if not all(
        isinstance(v, list) and len(v) == 3 and all(isinstance(x, str) for x in v)
        for v in variables
    ):
        raise StateImportError(f"{where}.variables: expected [name, value, source] triples")
    num = (int, float)
    return RunState(
        run_id=_get(d, "run_id", str, where),
        instance_id=_get(d, "instance_id", str, where),
        prompt_id=_get(d, "prompt_id", str, where),
        prompt_version=_get(d, "prompt_version", str, where),
        provider=_get(d, "provider", str, where),
        model=_get(d, "model", str, where),
        status=_get(d, "status", str, where),
        variables=tuple((v[0], v[1], v[2]) for v in variables),
        messages=_messages(_get(d, "messages", list, where), f"{where}.messages"),
        user_content=_opt(d, "user_content", str, where),
        started_at=float(_get(d, "started_at", num, where)),
        settings=immutables.Map(check_json(_get(d, "settings", dict, where), f"{where}.settings")),
        response=_get(d, "response", str, where),
        error_type=_opt(d, "error_type", str, where),
        session_id=_opt(d, "session_id", str, where),
        chunks=int(_get(d, "chunks", int, where)),
        error=_opt(d, "error", str, where),
        attempts=int(_get(d, "attempts", int, where)),
        input_tokens=_opt(d, "input_tokens", int, where),
        output_tokens=_opt(d, "output_tokens", int, where),
        latency_ms=_opt(d, "latency_ms", num, where),
        ttft_ms=_opt(d, "ttft_ms", num, where),
        running_at=_opt(d, "running_at", num, where),
        finished_at=_opt(d, "finished_at", num, where),
        cache_key=_opt(d, "cache_key", str, where),
        cache_hit=bool(_get(d, "cache_hit", bool, where)),
        cost_usd=_opt(d, "cost_usd", num, where),
        action_index=_opt(d, "action_index", int, where),
        state_hash=_opt(d, "state_hash", str, where),
        sweep_id=_opt(d, "sweep_id", str, where),
        tracked=bool(_get(d, "tracked", bool, where)),
    )


def _sweep(d: Any, where: str) -> SweepState:
    return SweepState(
        prompt_id=_get(d, "prompt_id", str, where),
        total=_get(d, "total", int, where),
        done=_get(d, "done", int, where),
        errors=_get(d, "errors", int, where),
        cancelled=_get(d, "cancelled", int, where),
        # older exports have per-cell "cells" and no "sent": the counts are what is kept
        sent=_get(d, "sent", int, where) if "sent" in d else 0,
    )


def state_from_dict(d: Any) -> State:
    """Rebuild a State; raises :class:`StateImportError` naming the first bad field."""
    if not isinstance(d, Mapping):
        raise StateImportError("state: expected an object")
    extra = set(d) - {"prompts", "instance_ids", "instances", "scoped", "runs", "sweeps"}
    if extra:
        raise StateImportError(f"state: unexpected field(s) {sorted(extra)}")
    ids = _get(d, "instance_ids", list, "state")
    if not all(isinstance(i, str) for i in ids):
        raise StateImportError("state.instance_ids: expected strings")
    instances = _each(_get(d, "instances", dict, "state"), "state.instances", _instance)
    if set(ids) != set(instances.keys()) or len(ids) != len(set(ids)):
        raise StateImportError("state.instance_ids does not match state.instances")
    sc = _get(d, "scoped", dict, "state")
    scoped = ScopedState(
        user_id=_opt(sc, "user_id", str, "state.scoped"),
        org_id=_opt(sc, "org_id", str, "state.scoped"),
        project_id=_opt(sc, "project_id", str, "state.scoped"),
        user=_str_map(_get(sc, "user", dict, "state.scoped"), "state.scoped.user"),
        org=_str_map(_get(sc, "org", dict, "state.scoped"), "state.scoped.org"),
        project=_str_map(_get(sc, "project", dict, "state.scoped"), "state.scoped.project"),
        status=_get(sc, "status", str, "state.scoped"),
        request_id=_opt(sc, "request_id", str, "state.scoped"),
        error=_opt(sc, "error", str, "state.scoped"),
    )
    return State(
        prompts=_each(_get(d, "prompts", dict, "state"), "state.prompts", _prompt_entry),
        instance_order=immutables.Map({iid: n for n, iid in enumerate(ids)}),
        instances=instances,
        scoped=scoped,
        runs=_each(_get(d, "runs", dict, "state"), "state.runs", _run),
        sweeps=_each(d.get("sweeps") or {}, "state.sweeps", _sweep),
        next_order=len(ids),
    )
