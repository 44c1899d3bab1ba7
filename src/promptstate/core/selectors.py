"""Memoized selectors: pure functions of the state.

Each selector caches its last result per parameter (an instance id) and returns the
identical object while the pieces of state it reads are the identical objects, so a
widget can tell "nothing changed" with ``is``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from promptstate.core.state import InstanceState, PromptEntry, RunState, State, prompt_key
from promptstate.errors import UnknownInstanceError, UnknownPromptError
from promptstate.models.run import ACTIVE_RUN_STATUSES
from promptstate.models.template import parse
from promptstate.models.values import ChatMessage, MergedVariables, VariableValue

__all__ = [
    "memoized",
    "select_display_messages",
    "select_instance",
    "select_last_run",
    "select_merged_variables",
    "select_preview",
    "select_prompt_entry",
    "select_runs_in_flight",
    "select_scoped_layers",
]

T = TypeVar("T")


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


def _layers(entry: PromptEntry | None, org: Any, project: Any, user: Any) -> MergedVariables:
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
    items: dict[str, VariableValue] = {}
    for name in names:
        # lowest to highest: defaults < org < project < user (< instance, see _merge)
        vv = VariableValue(
            defaults.get(name), "default" if defaults.get(name) is not None else "missing"
        )
        for source, layer in (("org", org), ("project", project), ("user", user)):
            if name in layer:
                vv = VariableValue(layer[name], source)
        items[name] = vv
    return MergedVariables(items)


def _merge(
    entry: PromptEntry | None, org: Any, project: Any, user: Any, values: Any
) -> MergedVariables:
    return _layers(entry, org, project, user).with_values(values)


def select_scoped_layers(state: State, entry: PromptEntry) -> MergedVariables:
    """A prompt's variables from its defaults and the scoped layers, without an instance.

    ``select_scoped_layers(state, entry).with_values(values)`` is what an instance with
    ``values`` would merge to (a sweep renders its cells this way, one lookup per batch).
    """
    s = state.scoped
    return _layers(entry, s.org, s.project, s.user)


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


def _preview_inputs(state: State, iid: str) -> tuple[Any, ...]:
    inst = select_instance(state, iid)
    return (_instance_prompt(state, inst), select_merged_variables(state, iid))


def _preview(entry: PromptEntry | None, merged: MergedVariables) -> tuple[ChatMessage, ...]:
    if entry is None:
        return ()
    values = merged.values_dict()
    return tuple(
        ChatMessage(m.role, _lenient_render(m.content, values), status="preview")
        for m in entry.prompt.messages
    )


select_preview: memoized[tuple[ChatMessage, ...]] = memoized(_preview_inputs, _preview)
select_preview.__doc__ = (
    "What ``send()`` would send now: the prompt rendered from the live variables "
    "(missing ones shown as ``{{ name }}``), each message marked ``status='preview'``."
)


def _display_inputs(state: State, iid: str) -> tuple[Any, ...]:
    inst = select_instance(state, iid)
    rid = inst.current_request_id or inst.last_run_id
    run = state.runs.get(rid) if rid else None
    return (inst.history, run, select_preview(state, iid))


def _display(
    history: tuple[ChatMessage, ...], run: RunState | None, preview: tuple[ChatMessage, ...]
) -> tuple[ChatMessage, ...]:
    if run is not None and run.status in ACTIVE_RUN_STATUSES:
        # in flight: exactly what it sent, plus the partial reply
        reply = ChatMessage("assistant", run.response, run.run_id, "streaming")
        return (*run.messages, reply)
    if run is not None and run.status in ("error", "cancelled"):
        # a reply that did not complete stays visible, after the conversation it
        # continued (or after the previous one, for a fresh send), with its status
        sent = run.messages
        new = sent[len(history) :] if sent[: len(history)] == history else sent
        failed = tuple(ChatMessage(m.role, m.content, run.run_id, run.status) for m in new)
        reply = ChatMessage("assistant", run.response, run.run_id, run.status)
        return (*history, *failed, reply)
    if history:
        return history
    return preview


select_display_messages: memoized[tuple[ChatMessage, ...]] = memoized(_display_inputs, _display)
select_display_messages.__doc__ = (
    "The conversation as shown: the messages as sent and received, the run in flight "
    "with its partial reply, a failed or cancelled reply with its status; before the "
    "first send, the preview."
)


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
