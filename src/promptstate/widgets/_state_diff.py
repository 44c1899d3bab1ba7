"""The state diff DevTools shows for an action: the paths that changed, as JSON text."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import immutables

from promptstate.core.serialize import state_to_dict
from promptstate.core.state import State
from promptstate.widgets._panel import dumps, truncate
from promptstate.widgets._panel_messages import DiffEntry

__all__ = ["state_diff"]

_DIFF_VALUE_LIMIT = 300

_SLICES = ("prompts", "instances", "runs")
_EMPTY = State()


def _entity(slice_: str, key: str, value: Any) -> Any:
    """One entity of a slice as in an export (``state_to_dict`` of a one-entity state)."""
    if value is None:
        return None
    changes: dict[str, Any] = {slice_: immutables.Map({key: value})}
    mini = replace(_EMPTY, **changes)
    return state_to_dict(mini)[slice_][key]


def _short(value: Any) -> str:
    return truncate(dumps(value), _DIFF_VALUE_LIMIT)


def _diff_values(path: str, old: Any, new: Any, out: list[DiffEntry]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k in dict.fromkeys([*old, *new]):
            sub = f"{path}.{k}"
            if k not in old:
                out.append(DiffEntry(path=sub, op="add", old=None, new=_short(new[k])))
            elif k not in new:
                out.append(DiffEntry(path=sub, op="remove", old=_short(old[k]), new=None))
            else:
                _diff_values(sub, old[k], new[k], out)
        return
    if isinstance(old, list) and isinstance(new, list):
        for i in range(max(len(old), len(new))):
            sub = f"{path}[{i}]"
            if i >= len(old):
                out.append(DiffEntry(path=sub, op="add", old=None, new=_short(new[i])))
            elif i >= len(new):
                out.append(DiffEntry(path=sub, op="remove", old=_short(old[i]), new=None))
            else:
                _diff_values(sub, old[i], new[i], out)
        return
    out.append(DiffEntry(path=path, op="change", old=_short(old), new=_short(new)))


def state_diff(before: State, after: State) -> list[DiffEntry]:
    """The paths that differ between two states, with old and new values as JSON text.

    Entities are compared by identity first (the state is immutable and shared
    structurally), so only the prompts, instances and runs an action touched are
    serialized.
    """
    out: list[DiffEntry] = []
    if before is after:
        return out
    for slice_ in _SLICES:
        a: immutables.Map[str, Any] = getattr(before, slice_)
        b: immutables.Map[str, Any] = getattr(after, slice_)
        if a is b:
            continue
        for key in dict.fromkeys([*a.keys(), *b.keys()]):
            va, vb = a.get(key), b.get(key)
            if va is vb:
                continue
            path = f"{slice_}.{key}"
            da, db = _entity(slice_, key, va), _entity(slice_, key, vb)
            if da is None:
                out.append(DiffEntry(path=path, op="add", old=None, new=_short(db)))
            elif db is None:
                out.append(DiffEntry(path=path, op="remove", old=_short(da), new=None))
            else:
                _diff_values(path, da, db, out)
    if before.instance_order is not after.instance_order:
        _diff_values("instance_ids", list(before.instance_ids), list(after.instance_ids), out)
    for slice_ in ("scoped", "sweeps"):
        if getattr(before, slice_) is not getattr(after, slice_):
            da = state_to_dict(replace(_EMPTY, **{slice_: getattr(before, slice_)}))[slice_]
            db = state_to_dict(replace(_EMPTY, **{slice_: getattr(after, slice_)}))[slice_]
            _diff_values(slice_, da, db, out)
    return out
