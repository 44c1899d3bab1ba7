"""The actions' JSON codec: payloads out for devtools, validated actions back in.

Every field is checked against its type hint on the way in, so a hand-edited export
cannot put a malformed value into the state.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Union

from promptstate.core.actions import ACTION_TYPES, Action
from promptstate.errors import StateImportError
from promptstate.models.values import ChatMessage

__all__ = ["action_from_json", "action_to_json", "check_json"]


def _to_json(value: Any) -> Any:
    if isinstance(value, ChatMessage):
        out = {"role": value.role, "content": value.content, "run_id": value.run_id}
        if value.status is not None:
            out["status"] = value.status
        return out
    if isinstance(value, tuple | list):
        return [_to_json(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def action_to_json(action: Action) -> dict[str, Any]:
    """The payload of an action as JSON-ready data."""
    return {f.name: _to_json(getattr(action, f.name)) for f in dataclasses.fields(action)}


_MAX_DEPTH = 32


def _coerce(value: Any, hint: Any, where: str, depth: int = 0) -> Any:
    """Check ``value`` against a type hint, converting lists to tuples where declared."""
    if depth > _MAX_DEPTH:
        raise StateImportError(f"{where}: nested too deeply")
    if hint is Any:
        return check_json(value, where, depth)
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where, depth + 1)
            except StateImportError as exc:
                errors.append(str(exc))
        raise StateImportError(errors[0] if errors else f"{where}: unexpected {value!r}")
    if hint is ChatMessage:
        if not isinstance(value, dict):
            raise StateImportError(f"{where}: expected a message object")
        extra = set(value) - {"role", "content", "run_id", "status"}
        if extra:
            raise StateImportError(f"{where}: unexpected field(s) {sorted(extra)}")
        return ChatMessage(
            _coerce(value.get("role"), str, f"{where}.role", depth + 1),
            _coerce(value.get("content"), str, f"{where}.content", depth + 1),
            _coerce(value.get("run_id"), str | None, f"{where}.run_id", depth + 1),
            _coerce(value.get("status"), str | None, f"{where}.status", depth + 1),
        )
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        # a record inside an action (a sweep's SentCell / CellEnd): same checks as a payload
        return _build(hint, value, where, depth + 1)
    if origin is tuple:
        args = typing.get_args(hint)
        if not isinstance(value, list | tuple):
            raise StateImportError(f"{where}: expected a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(
                _coerce(v, args[0], f"{where}[{i}]", depth + 1) for i, v in enumerate(value)
            )
        if len(value) != len(args):
            raise StateImportError(f"{where}: expected {len(args)} items")
        return tuple(
            _coerce(v, a, f"{where}[{i}]", depth + 1)
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if origin is dict:
        _, val_hint = typing.get_args(hint)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise StateImportError(f"{where}: expected an object")
        return {k: _coerce(v, val_hint, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise StateImportError(f"{where}: expected a number")
        if not math.isfinite(value):
            raise StateImportError(f"{where}: not a finite number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise StateImportError(f"{where}: expected an integer")
        return value
    if hint in (str, bool):
        if not isinstance(value, hint):
            raise StateImportError(f"{where}: expected {hint.__name__}")
        if hint is str:
            _check_text(value, where)
        return value
    raise StateImportError(f"{where}: unsupported type {hint!r}")  # pragma: no cover


def _check_text(value: str, where: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise StateImportError(f"{where}: not valid Unicode text (lone surrogate)") from None


def check_json(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` if it is finite JSON data of valid text, else :class:`StateImportError`."""
    if depth > _MAX_DEPTH:
        raise StateImportError(f"{where}: nested too deeply")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise StateImportError(f"{where}: not a finite number")
        return value
    if isinstance(value, str):
        _check_text(value, where)
        return value
    if isinstance(value, list | tuple):
        return [check_json(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: check_json(v, f"{where}[{k!r}]", depth + 1) for k, v in value.items()}
    raise StateImportError(f"{where}: not JSON data ({type(value).__name__})")


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = typing.get_type_hints(cls)
    return found


def action_from_json(type_: str, payload: Any) -> Action:
    """Rebuild an action from ``(type, payload)``, validating every field.

    Raises :class:`~promptstate.StateImportError` naming the first bad field.
    """
    cls = ACTION_TYPES.get(type_) if isinstance(type_, str) else None
    if cls is None:
        raise StateImportError(f"unknown action type {type_!r}")
    if payload is None:
        payload = {}
    action: Action = _build(cls, payload, type_)
    return action


def _build(cls: type[Any], payload: Any, where: str, depth: int = 0) -> Any:
    """An instance of the dataclass ``cls`` from a JSON object, every field checked."""
    if not isinstance(payload, dict):
        raise StateImportError(f"{where}: payload must be an object")
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    extra = set(payload) - names
    if extra:
        raise StateImportError(f"{where}: unexpected field(s) {sorted(extra)}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in payload:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise StateImportError(f"{where}: missing field {f.name!r}")
            continue
        kwargs[f.name] = _coerce(payload[f.name], hints[f.name], f"{where}.{f.name}", depth)
    return cls(**kwargs)
