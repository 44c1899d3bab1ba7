"""Comm payloads between the widget front end (``js/widget.js``) and the kernel.

Front end to kernel (custom messages)::

    {"type": "set_variable", "name": str, "value": str}      debounced typing
    {"type": "unset_variable", "name": str}                  back to the inherited value
    {"type": "send", "seq": int, "content": str | None,
     "variables": {name: value},
     "settings": {"temperature": float, "max_tokens": int}}  the Send click (settings optional)
    {"type": "set_model", "model": str | None}               the settings row's model
    {"type": "stop"}

Kernel to front end: trait updates (:class:`VariablePayload`, :class:`MessagePayload`,
:class:`RunPayload`) and one custom message per send, :class:`SendDone`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from promptstate.core.state import RunState
from promptstate.models.values import ChatMessage, MergedVariables

__all__ = [
    "SETTING_RANGES",
    "ClientMessage",
    "MessagePayload",
    "RunPayload",
    "SendDone",
    "SendRequest",
    "SetModel",
    "SetVariable",
    "Stop",
    "UnsetVariable",
    "VariablePayload",
    "messages_payload",
    "parse_client_message",
    "run_payload",
    "variables_payload",
]


class SetVariable(TypedDict):
    type: Literal["set_variable"]
    name: str
    value: str


class UnsetVariable(TypedDict):
    type: Literal["unset_variable"]
    name: str


class SendRequest(TypedDict):
    type: Literal["send"]
    seq: int
    content: str | None
    variables: dict[str, str]
    settings: NotRequired[dict[str, float | int]]


class SetModel(TypedDict):
    type: Literal["set_model"]
    model: str | None


class Stop(TypedDict):
    type: Literal["stop"]


ClientMessage = SetVariable | UnsetVariable | SendRequest | SetModel | Stop

# The settings row's fields: (smallest, largest, integer only).
SETTING_RANGES: dict[str, tuple[float, float, bool]] = {
    "temperature": (0.0, 2.0, False),
    "max_tokens": (1, 1_000_000, True),
}


def _settings(raw: object) -> dict[str, float | int]:
    """The Send's settings, checked here so a bad value is shown before anything runs."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError("send message 'settings' must be an object")
    out: dict[str, float | int] = {}
    for key, value in raw.items():
        if key not in SETTING_RANGES:
            raise ValueError(f"unknown setting {key!r} (known: {', '.join(SETTING_RANGES)})")
        low, high, integer = SETTING_RANGES[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer:
            ok = float(value).is_integer()
        if not ok or not low <= value <= high:
            kind = "a whole number" if integer else "a number"
            raise ValueError(f"{key} must be {kind} from {low:g} to {high:g}, not {value!r}")
        out[key] = int(value) if integer else float(value)
    return out


class SendDone(TypedDict):
    type: Literal["send_done"]
    seq: int
    ok: bool
    run_id: str | None
    status: str
    error: str | None


class VariablePayload(TypedDict):
    name: str
    value: str | None
    source: str


class MessagePayload(TypedDict):
    """A chat message; ``status`` (``preview``, ``streaming``, ``cancelled``, ``error``)
    only on messages that are not part of the conversation as sent."""

    role: str
    content: str
    run_id: str | None
    status: NotRequired[str]


class RunPayload(TypedDict, total=False):
    run_id: str
    status: str
    provider: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    latency_ms: float | None
    ttft_ms: float | None
    error: str | None


def _text(content: Mapping[str, Any], key: str) -> str:
    value = content.get(key)
    if not isinstance(value, str):
        raise ValueError(f"{content.get('type')!r} message needs a string {key!r}")
    return value


def parse_client_message(content: object) -> ClientMessage:
    """Validate a custom message from the front end (raises ValueError)."""
    if not isinstance(content, Mapping):
        raise ValueError(f"widget message must be an object, not {type(content).__name__}")
    kind = content.get("type")
    if kind == "set_variable":
        return SetVariable(type=kind, name=_text(content, "name"), value=_text(content, "value"))
    if kind == "unset_variable":
        return UnsetVariable(type=kind, name=_text(content, "name"))
    if kind == "send":
        body = content.get("content")
        if body is not None and not isinstance(body, str):
            raise ValueError("send message 'content' must be a string or null")
        raw = content.get("variables") or {}
        if not isinstance(raw, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise ValueError("send message 'variables' must map names to strings")
        seq = content.get("seq", 0)
        request = SendRequest(
            type=kind, seq=seq if isinstance(seq, int) else 0, content=body, variables=dict(raw)
        )
        settings = _settings(content.get("settings"))
        if settings:
            request["settings"] = settings
        return request
    if kind == "set_model":
        model = content.get("model")
        if model is not None and not isinstance(model, str):
            raise ValueError("set_model message 'model' must be a string or null")
        return SetModel(type=kind, model=(model or "").strip() or None)
    if kind == "stop":
        return Stop(type=kind)
    raise ValueError(f"unknown widget message type {kind!r}")


def variables_payload(merged: MergedVariables) -> list[VariablePayload]:
    """The ``variables`` trait: merged values with their source, in prompt order."""
    return [VariablePayload(name=n, value=v.value, source=v.source) for n, v in merged.items()]


def messages_payload(messages: tuple[ChatMessage, ...]) -> list[MessagePayload]:
    """The ``messages`` trait: the conversation as shown, partial reply included."""
    out: list[MessagePayload] = []
    for m in messages:
        item = MessagePayload(role=m.role, content=m.content, run_id=m.run_id)
        if m.status is not None:
            item["status"] = m.status
        out.append(item)
    return out


def run_payload(run: RunState | None) -> RunPayload:
    """The ``last_run`` trait: the run in flight or the latest one (``{}`` if none)."""
    if run is None:
        return RunPayload()
    return RunPayload(
        run_id=run.run_id,
        status=run.status,
        provider=run.provider,
        model=run.model,
        input_tokens=run.input_tokens,
        output_tokens=run.output_tokens,
        latency_ms=run.latency_ms,
        ttft_ms=run.ttft_ms,
        error=run.error,
    )
