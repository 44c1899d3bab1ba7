"""The immutable state tree.

Everything here is a frozen dataclass, a tuple or an ``immutables.Map`` (a HAMT: an
update copies O(log n) nodes, so dispatch stays flat with thousands of instances).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import immutables

from promptstate.models.prompt import Prompt
from promptstate.models.values import ChatMessage

__all__ = [
    "InstanceState",
    "PromptEntry",
    "RunState",
    "ScopedState",
    "State",
    "SweepState",
    "initial_state",
    "prompt_key",
]


@dataclass(frozen=True)
class PromptEntry:
    """A prompt in the session cache, with where and when it was fetched."""

    prompt: Prompt
    source: str
    fetched_at: float


@dataclass(frozen=True)
class InstanceState:
    """One live use of a prompt.

    ``values`` are the instance's own variable values. ``history`` is the conversation
    exactly as it was sent and received (the rendered prompt turns included), so a
    follow-up never re-renders a turn that was already sent.
    """

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
    """A run as the store sees it: in flight, or the latest of its instance.

    ``messages`` is the request exactly as rendered by the action that started it;
    ``response`` grows while the reply streams.
    """

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
    response: str = ""
    chunks: int = 0
    error: str | None = None
    error_type: str | None = None
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
    session_id: str | None = None
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
class SweepState:
    """Progress of one sweep (or eval): counts only, O(1) per batch of cells."""

    prompt_id: str
    total: int
    done: int = 0
    errors: int = 0
    cancelled: int = 0
    # cells sent so far; each cell's own status lives on its job (``Sweep.cells``), so a
    # 50,000-cell sweep does not copy a 50,000-entry map into every state
    sent: int = 0


@dataclass(frozen=True)
class State:
    """The root of the state tree.

    ``instance_ids`` keeps instances in creation order as a map of id to sequence number
    (O(log n) to add or drop, unlike a tuple).
    """

    prompts: immutables.Map[str, PromptEntry] = field(default_factory=immutables.Map)
    instance_order: immutables.Map[str, int] = field(default_factory=immutables.Map)
    instances: immutables.Map[str, InstanceState] = field(default_factory=immutables.Map)
    scoped: ScopedState = field(default_factory=ScopedState)
    runs: immutables.Map[str, RunState] = field(default_factory=immutables.Map)
    sweeps: immutables.Map[str, SweepState] = field(default_factory=immutables.Map)
    next_order: int = 0

    @property
    def instance_ids(self) -> tuple[str, ...]:
        """Live instance ids, oldest first."""
        return tuple(sorted(self.instance_order, key=self.instance_order.__getitem__))


def prompt_key(prompt_id: str, version: str) -> str:
    """Key of one prompt version in ``state.prompts`` (the bare id maps to the latest)."""
    return f"{prompt_id}@{version}"


def initial_state() -> State:
    """A fresh empty state."""
    return State()
