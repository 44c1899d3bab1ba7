"""Rendering a send inside the store transaction that records it.

:func:`begin_send` is the only way a run starts. It validates the input first (so bad
input raises a typed error and changes nothing), then builds one
:class:`~promptstate.core.actions.ExecutePending` under the store lock from the state
that action applies to: the click's unsynced edits, the merged variables with their
sources, and the exact request messages. Nothing that happens afterwards (edits, time
travel, other widgets) can change what that action says is sent.

Conversation semantics: ``content=None`` starts a fresh conversation rendered from the
live variables; a string continues the conversation *as it was sent* (the instance's
history) with one more user message. An edit after a conversation started never
rewrites it: it shows in the preview and applies to the next fresh send.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptstate.core.actions import ExecutePending, ExecuteRejected
from promptstate.core.reducers.instances import apply_values
from promptstate.core.selectors import (
    select_instance,
    select_merged_variables,
    select_prompt_entry,
)
from promptstate.core.state import State
from promptstate.engine.ports import Runtime
from promptstate.errors import InstanceBusyError, MissingVariablesError, VariableError
from promptstate.models.prompt import normalize_value
from promptstate.models.provider import Provider, validate_settings
from promptstate.models.template import parse
from promptstate.models.values import ChatMessage

__all__ = [
    "PreparedSend",
    "begin_send",
    "check_name",
    "clean_values",
    "request_cache_key",
    "request_settings",
    "settle_orphan",
    "state_hash",
]


def check_name(name: object) -> str:
    """A variable name: an ASCII identifier (raises :class:`VariableError`)."""
    if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
        raise VariableError(f"variable names must be ASCII identifiers, got {name!r}")
    return name


def clean_values(values: object) -> dict[str, str]:
    """Validate a mapping of variable values into template text (typed errors only)."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise VariableError(
            f"variables must be a mapping of name to value, not {type(values).__name__}"
        )
    return {check_name(k): normalize_value(k, v) for k, v in values.items()}


@dataclass(frozen=True)
class PreparedSend:
    """A send that is recorded in the store: its action and the provider to call."""

    action: ExecutePending
    provider: Provider


# what json.dumps(..., ensure_ascii=False[, sort_keys=True]) writes, one encoder each
_esc = json.encoder.encode_basestring  # a JSON string literal, as json.dumps writes it
_SORTED_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True).encode


def request_settings(
    provider: str, prompt_settings: Mapping[str, Any], extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The settings a request carries: the prompt's, overridden by the send's."""
    merged = validate_settings({**prompt_settings, **extra})
    if provider != "echo":  # echo_* knobs are for the offline provider; never sent to an API
        merged = {k: v for k, v in merged.items() if not k.startswith("echo_")}
    return merged


def request_cache_key(
    provider: str, model: str, messages: tuple[ChatMessage, ...], settings: Any
) -> str:
    """The response-cache key of a request (hashing it costs ~40 us: only when cached)."""
    wire = [{"role": m.role, "content": m.content} for m in messages]
    return _cache_key(provider, model, wire, settings)


def _cache_key(provider: str, model: str, messages: list[dict[str, str]], settings: Any) -> str:
    raw = _SORTED_JSON(
        {"provider": provider, "model": model, "messages": messages, "settings": settings}
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def state_hash(variables: tuple[tuple[str, str, str], ...], messages: Any, version: str) -> str:
    """A short hash of what a send depends on: variable values, messages, prompt version."""
    # values, not their sources: a restored instance holds the same values as its own
    pairs = sorted((n, v) for n, v, _ in variables)
    # the text json.dumps({"v": pairs, "m": [(role, content)...], "p": version}) writes
    raw = (
        '{"v": ['
        + ", ".join(f"[{_esc(n)}, {_esc(v)}]" for n, v in pairs)
        + '], "m": ['
        + ", ".join(f"[{_esc(m.role)}, {_esc(m.content)}]" for m in messages)
        + '], "p": '
        + _esc(version)
        + "}"
    )
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def settle_orphan(rt: Runtime, instance_id: str, reason: str) -> bool:
    """End an instance's run in flight that no task in this process executes.

    Such a run comes from a state this process did not run (an imported export, a
    restored snapshot); without this its instance would stay busy forever. Returns
    whether a run was ended.
    """

    # Fast path (every send): a lock-free look at the present. An instance with no run
    # in flight, or one this process executes, has no orphan; only a state swapped in
    # from outside (import, restore) can make one, and begin_send's own transaction
    # still refuses a busy instance if that races with this check.
    inst = rt.store.present_state().instances.get(instance_id)
    if inst is None or inst.current_request_id is None or rt.tasks.known(inst.current_request_id):
        return False

    class _NotOrphan(Exception):
        pass

    def build(state: State, index: int) -> ExecuteRejected:
        inst = state.instances.get(instance_id)
        rid = inst.current_request_id if inst is not None else None
        if rid is None or rt.tasks.known(rid):
            raise _NotOrphan
        return ExecuteRejected(
            request_id=rid,
            instance_id=instance_id,
            status="error",
            error=reason,
            error_type="RunFailedError",
            at=rt.clock(),
        )

    try:
        rt.store.transact(build)
    except _NotOrphan:
        return False
    return True


def begin_send(
    rt: Runtime,
    instance_id: str,
    content: str | None = None,
    *,
    edits: Mapping[str, object] | None = None,
    model: str | None = None,
    settings: Mapping[str, Any] | None = None,
    cache: bool | None = None,
    sweep_id: str | None = None,
) -> PreparedSend:
    """Validate, then render and record a send in one store transaction.

    Raises a typed error (bad input, missing variables, unknown provider, busy instance)
    before anything is recorded; once it returns, the run exists and must be executed
    (:func:`~promptstate.engine.execute.execute`) so it ends in a terminal status.
    """
    if content is not None and not isinstance(content, str):
        raise VariableError(
            f"send() content must be a string or None, not {type(content).__name__}"
        )
    if content is not None:
        normalize_value("content", content)  # rejects lone surrogates
    clean_edits = clean_values(edits)
    if model is not None:
        if not isinstance(model, str) or not model.strip():
            from promptstate.errors import UnknownProviderError

            raise UnknownProviderError(repr(model))
        rt.providers.resolve(model)
    extra_settings = validate_settings(settings or {})
    use_cache = rt.cache_default if cache is None else bool(cache)
    settle_orphan(rt, instance_id, "the run was in flight in a state this process did not run")
    chosen: list[Provider] = []

    def build(state: State, index: int) -> ExecutePending:
        inst = select_instance(state, instance_id)
        if inst.current_request_id is not None:
            raise InstanceBusyError(
                f"instance {instance_id!r} already has run {inst.current_request_id!r} in "
                "flight; await it or call inst.cancel()"
            )
        view = apply_values(state, instance_id, clean_edits)
        entry = select_prompt_entry(view, instance_id)
        prompt = entry.prompt
        merged = select_merged_variables(view, instance_id)
        missing = [n for n in prompt.used_variables if merged[n].value is None]
        if missing:
            raise MissingVariablesError(missing, prompt.id)
        values = {n: v.value for n, v in merged.items() if v.value is not None}
        rid = rt.new_id()
        if content is not None and inst.history:
            messages: tuple[ChatMessage, ...] = inst.history
        else:
            messages = tuple(
                ChatMessage(m.role, parse(m.content).render(values), rid) for m in prompt.messages
            )
        if content is not None:
            messages = (*messages, ChatMessage("user", content, rid))
        provider_name, model_name, provider = rt.providers.resolve(
            model if model is not None else (inst.model or prompt.model)
        )
        merged_settings = request_settings(provider_name, prompt.settings, extra_settings)
        variables = tuple((n, v.value, v.source) for n, v in merged.items() if v.value is not None)
        key = None
        if use_cache:  # hashing the whole request costs ~40 us; only a cached send needs it
            key = request_cache_key(provider_name, model_name, messages, merged_settings)
        chosen.append(provider)
        rt.tasks.reserve(rid)  # from here on the run is ours: never settled as an orphan
        return ExecutePending(
            request_id=rid,
            instance_id=instance_id,
            prompt_id=prompt.id,
            prompt_version=prompt.version,
            provider=provider_name,
            model=model_name,
            variables=variables,
            messages=messages,
            settings=merged_settings,
            at=rt.clock(),
            user_content=content,
            edits=clean_edits,
            cache_key=key,
            action_index=index,
            state_hash=state_hash(variables, messages, prompt.version),
            sweep_id=sweep_id,
            session_id=rt.session_id,
            tracked=inst.track_in_runs,
        )

    action = rt.store.transact(build)
    assert isinstance(action, ExecutePending)
    return PreparedSend(action, chosen[-1])
