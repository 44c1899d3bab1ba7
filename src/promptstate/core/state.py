"""The immutable state tree and the action record.

Everything here is a frozen dataclass, a tuple or an ``immutables.Map`` (a HAMT: an
update copies O(log n) nodes, so dispatch stays flat with thousands of instances).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import immutables

from promptstate.models.prompt import Prompt

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "TERMINAL_RUN_STATUSES",
    "Action",
    "ChatMessage",
    "InstanceState",
    "PromptEntry",
    "RunState",
    "ScopedState",
    "State",
    "initial_state",
    "prompt_key",
]

TERMINAL_RUN_STATUSES = frozenset({"success", "error", "cancelled", "interrupted"})
ACTIVE_RUN_STATUSES = frozenset({"queued", "running"})


@dataclass(frozen=True)
class Action:
    """A state change request: ``type`` is ``"slice/event"``, ``payload`` JSON-ready data."""

    type: str
    payload: Any = None


@dataclass(frozen=True)
class ChatMessage:
    """A message as shown or sent: rendered text, never a template."""

    role: str
    content: str
    run_id: str | None = None


@dataclass(frozen=True)
class PromptEntry:
    """A prompt in the session cache, with where and when it was fetched."""

    prompt: Prompt
    source: str
    fetched_at: float


@dataclass(frozen=True)
class InstanceState:
    """One live use of a prompt. ``values`` are the instance's own variable values."""

    id: str
    prompt_id: str
    prompt_version: str
    model: str | None
    values: immutables.Map[str, str]
    given: frozenset[str]
    history: tuple[ChatMessage, ...]
    status: str
    current_request_id: str | None
    last_run_id: str | None
    track_in_runs: bool
    created_at: float
    error: str | None = None


@dataclass(frozen=True)
class RunState:
    """A run as the store sees it: in flight, or the latest of its instance."""

    run_id: str
    instance_id: str
    prompt_id: str
    prompt_version: str
    provider: str
    model: str
    status: str
    variables: tuple[tuple[str, str, str], ...]
    messages: tuple[ChatMessage, ...]
    user_content: str | None
    started_at: float
    settings: immutables.Map[str, Any] = field(default_factory=immutables.Map)
    text: str = ""
    chunks: int = 0
    error: str | None = None
    attempts: int = 0
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    running_at: float | None = None
    finished_at: float | None = None
    cache_key: str | None = None
    cache_hit: bool = False
    cost_usd: float | None = None
    action_index: int | None = None
    state_hash: str | None = None
    sweep_id: str | None = None
    tracked: bool = True


@dataclass(frozen=True)
class ScopedState:
    """Scoped variables fetched from the run log, by layer."""

    user_id: str | None = None
    org_id: str | None = None
    project_id: str | None = None
    user: immutables.Map[str, str] = field(default_factory=immutables.Map)
    org: immutables.Map[str, str] = field(default_factory=immutables.Map)
    project: immutables.Map[str, str] = field(default_factory=immutables.Map)
    status: str = "idle"
    request_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class State:
    """The root of the state tree."""

    prompts: immutables.Map[str, PromptEntry] = field(default_factory=immutables.Map)
    instance_ids: tuple[str, ...] = ()
    instances: immutables.Map[str, InstanceState] = field(default_factory=immutables.Map)
    scoped: ScopedState = field(default_factory=ScopedState)
    runs: immutables.Map[str, RunState] = field(default_factory=immutables.Map)
    ui: immutables.Map[str, Any] = field(default_factory=immutables.Map)


def prompt_key(prompt_id: str, version: str) -> str:
    """Key of one prompt version in ``state.prompts`` (the bare id maps to the latest)."""
    return f"{prompt_id}@{version}"


def initial_state() -> State:
    """A fresh empty state."""
    return State()
