"""Memoized selectors: pure functions of the state.

Each selector caches its last result per parameter (an instance id) and returns the
identical object while the pieces of state it reads are the identical objects, so a
widget can tell "nothing changed" with ``is``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, NamedTuple, TypeVar

from promptstate.core.state import (
    ACTIVE_RUN_STATUSES,
    ChatMessage,
    InstanceState,
    PromptEntry,
    RunState,
    State,
    prompt_key,
)
from promptstate.errors import UnknownInstanceError, UnknownPromptError
from promptstate.models.template import parse

__all__ = [
    "SOURCES",
    "MergedVariables",
    "VariableValue",
    "memoized",
    "select_display_messages",
    "select_instance",
    "select_instance_status",
    "select_last_run",
    "select_merged_variables",
    "select_prompt_entry",
    "select_run",
    "select_runs_in_flight",
]

T = TypeVar("T")
SOURCES = ("default", "org", "project", "user", "instance")


class VariableValue(NamedTuple):
    """A merged variable value and the layer that supplied it (``"missing"`` if none)."""

    value: str | None
    source: str


class MergedVariables(Mapping[str, VariableValue]):
    """Read-only mapping ``name -> VariableValue(value, source)`` in prompt order."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, VariableValue]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> VariableValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def values_dict(self) -> dict[str, str | None]:
        """Plain ``{name: value}``."""
        return {k: v.value for k, v in self._items.items()}

    @property
    def missing(self) -> tuple[str, ...]:
        """Names with no value from any layer."""
        return tuple(k for k, v in self._items.items() if v.value is None)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v.value!r} ({v.source})" for k, v in self._items.items())
        return f"MergedVariables({inner})"


class memoized(Generic[T]):
    """Cache ``fn(state, key)`` per key, keyed on the identity of its inputs.

    ``inputs(state, key)`` returns the tuple of state pieces the result depends on;
    when every piece is the same object as last time, the cached result is returned.
    The cache is bounded (LRU) so closed instances do not leak.
    """

    def __init__(
        self,
        inputs: Callable[[State, str], tuple[Any, ...]],
        compute: Callable[..., T],
        maxsize: int = 4096,
    ) -> None:
        self._inputs = inputs
        self._compute = compute
        self._cache: OrderedDict[str, tuple[tuple[Any, ...], T]] = OrderedDict()
        self._lock = threading.Lock()
        self._maxsize = maxsize
        self.recomputations = 0

    def forget(self, key: str) -> None:
        """Drop the cached result for ``key`` (its instance was closed)."""
        with self._lock:
            self._cache.pop(key, None)

    def __call__(self, state: State, key: str) -> T:
        ins = self._inputs(state, key)
        with self._lock:
            hit = self._cache.get(key)
            if (
                hit is not None
                and len(hit[0]) == len(ins)
                and all(a is b for a, b in zip(hit[0], ins, strict=True))
            ):
                self._cache.move_to_end(key)
                return hit[1]
        result = self._compute(*ins)
        with self._lock:
            self.recomputations += 1
            self._cache[key] = (ins, result)
            self._cache.move_to_end(key)
            while len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return result


def select_instance(state: State, instance_id: str) -> InstanceState:
    """The instance entity; raises UnknownInstanceError."""
    inst = state.instances.get(instance_id)
    if inst is None:
        raise UnknownInstanceError(instance_id)
    return inst


def _instance_prompt(state: State, inst: InstanceState) -> PromptEntry | None:
    return state.prompts.get(prompt_key(inst.prompt_id, inst.prompt_version))


def select_prompt_entry(state: State, instance_id: str) -> PromptEntry:
    """The cached prompt version an instance runs; raises UnknownPromptError if absent."""
    inst = select_instance(state, instance_id)
    entry = _instance_prompt(state, inst)
    if entry is None:  # only possible in a hand-built or imported state
        raise UnknownPromptError(prompt_key(inst.prompt_id, inst.prompt_version))
    return entry


def _merged_inputs(state: State, iid: str) -> tuple[Any, ...]:
    inst = select_instance(state, iid)
    entry = _instance_prompt(state, inst)
    s = state.scoped
    return (entry, s.org, s.project, s.user, inst.values)


def _merge(
    entry: PromptEntry | None, org: Any, project: Any, user: Any, values: Any
) -> MergedVariables:
    names: list[str] = []
    defaults: Mapping[str, str | None] = {}
    if entry is not None:
        p = entry.prompt
        defaults = p.variables
        names.extend(defaults)
        for m in p.messages:
            for part in parse(m.content).parts:
                if isinstance(part, tuple) and part[0] not in names:
                    names.append(part[0])
    for k in values:
        if k not in names:
            names.append(k)
    items: dict[str, VariableValue] = {}
    for name in names:
        # lowest to highest: defaults < org < project < user < instance
        vv = VariableValue(
            defaults.get(name), "default" if defaults.get(name) is not None else "missing"
        )
        for source, layer in (
            ("org", org),
            ("project", project),
            ("user", user),
            ("instance", values),
        ):
            if name in layer:
                vv = VariableValue(layer[name], source)
        items[name] = vv
    return MergedVariables(items)


select_merged_variables: memoized[MergedVariables] = memoized(_merged_inputs, _merge)
select_merged_variables.__doc__ = "Merged variables of an instance, with provenance."


def _lenient_render(content: str, values: Mapping[str, str | None]) -> str:
    out: list[str] = []
    for part in parse(content).parts:
        if isinstance(part, str):
            out.append(part)
        else:
            v = values.get(part[0])
            out.append("{{ " + part[0] + " }}" if v is None else v)
    return "".join(out)


def _display_inputs(state: State, iid: str) -> tuple[Any, ...]:
    inst = select_instance(state, iid)
    current = state.runs.get(inst.current_request_id) if inst.current_request_id else None
    return (
        _instance_prompt(state, inst),
        select_merged_variables(state, iid),
        inst.history,
        current,
    )


def _display(
    entry: PromptEntry | None,
    merged: MergedVariables,
    history: tuple[ChatMessage, ...],
    current: RunState | None,
) -> tuple[ChatMessage, ...]:
    if current is not None:
        # While a run is in flight, show exactly what it sent plus the partial reply.
        return (*current.messages, ChatMessage("assistant", current.text, current.run_id))
    if entry is None:
        return history
    values = merged.values_dict()
    rendered = tuple(
        ChatMessage(m.role, _lenient_render(m.content, values)) for m in entry.prompt.messages
    )
    return rendered + history


select_display_messages: memoized[tuple[ChatMessage, ...]] = memoized(_display_inputs, _display)
select_display_messages.__doc__ = "The conversation as shown: rendered prompt, history, live reply."


def select_instance_status(state: State, instance_id: str) -> str:
    """``idle``, ``queued``, ``running``, ``success``, ``error`` or ``cancelled``."""
    return select_instance(state, instance_id).status


def select_run(state: State, run_id: str) -> RunState | None:
    """A run still held in the store (in flight, or the latest of its instance)."""
    return state.runs.get(run_id)


def select_last_run(state: State, instance_id: str) -> RunState | None:
    """The instance's run in flight, else its latest finished run."""
    inst = select_instance(state, instance_id)
    rid = inst.current_request_id or inst.last_run_id
    return state.runs.get(rid) if rid else None


_inflight_cache: list[Any] = [None, ()]
_inflight_lock = threading.Lock()


def select_runs_in_flight(state: State) -> tuple[str, ...]:
    """Ids of runs that are queued or running."""
    with _inflight_lock:
        if _inflight_cache[0] is state.runs:
            return tuple(_inflight_cache[1])
    ids = tuple(rid for rid, r in state.runs.items() if r.status in ACTIVE_RUN_STATUSES)
    with _inflight_lock:
        _inflight_cache[0] = state.runs
        _inflight_cache[1] = ids
    return ids
