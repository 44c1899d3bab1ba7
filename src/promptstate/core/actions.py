"""Every action, one frozen dataclass each, grouped by slice.

An action's ``type`` is ``"slice/event"``; its fields are its payload and hold only
JSON-ready values (str, int, float, bool, None, tuples, string-keyed dicts and
:class:`ChatMessage`), so the devtools can export and replay any history. Effects put
everything they learned (ids, timestamps, prompt definitions, model output) into the
payload: reducers never read a clock or the network, so a replay is exact.
Lifecycles follow Redux Toolkit: ``*_pending`` / ``*_fulfilled`` / ``*_rejected`` with a
``request_id``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from promptstate.models.values import ChatMessage

__all__ = [
    "ACTION_TYPES",
    "Action",
    "AttemptStarted",
    "CellEnd",
    "ChunkReceived",
    "ExecuteFulfilled",
    "ExecutePending",
    "ExecuteRejected",
    "ExecuteStarted",
    "HistoryCleared",
    "InstanceClosed",
    "InstanceRestored",
    "InstanceStarted",
    "ModelSet",
    "PromptFetchFulfilled",
    "PromptFetchPending",
    "PromptFetchRejected",
    "PromptInvalidated",
    "ScopedFetchFulfilled",
    "ScopedFetchPending",
    "ScopedFetchRejected",
    "ScopedVariableSet",
    "SentCell",
    "SweepCellsFinished",
    "SweepCellsSent",
    "SweepFinished",
    "SweepStarted",
    "VariableSet",
    "VariableUnset",
    "VariablesSet",
]

A = TypeVar("A", bound="Action")


@dataclass(frozen=True)
class Action:
    """Base of every action; subclasses set ``type`` and declare their payload fields."""

    type: ClassVar[str] = ""

    @property
    def instance_id_or_none(self) -> str | None:
        """The instance the action is about, if any (devtools filters on it)."""
        value = getattr(self, "instance_id", None)
        return value if isinstance(value, str) else None


# -- prompts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptFetchPending(Action):
    type: ClassVar[str] = "prompts/fetch_pending"
    prompt_id: str
    request_id: str


@dataclass(frozen=True)
class PromptFetchFulfilled(Action):
    """A prompt definition arrived; ``latest=False`` caches an old version only."""

    type: ClassVar[str] = "prompts/fetch_fulfilled"
    prompt: dict[str, Any]
    source: str
    at: float
    request_id: str
    latest: bool = True


@dataclass(frozen=True)
class PromptFetchRejected(Action):
    type: ClassVar[str] = "prompts/fetch_rejected"
    prompt_id: str
    request_id: str
    error: str


@dataclass(frozen=True)
class PromptInvalidated(Action):
    """A new version was registered: the next ``start`` fetches again."""

    type: ClassVar[str] = "prompts/invalidated"
    prompt_id: str


# -- scoped variables ------------------------------------------------------------------------


@dataclass(frozen=True)
class ScopedFetchPending(Action):
    type: ClassVar[str] = "scoped/fetch_pending"
    request_id: str
    user_id: str | None = None
    org_id: str | None = None
    project_id: str | None = None


@dataclass(frozen=True)
class ScopedFetchFulfilled(Action):
    type: ClassVar[str] = "scoped/fetch_fulfilled"
    request_id: str
    user: dict[str, str] = field(default_factory=dict)
    org: dict[str, str] = field(default_factory=dict)
    project: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScopedFetchRejected(Action):
    type: ClassVar[str] = "scoped/fetch_rejected"
    request_id: str
    error: str


@dataclass(frozen=True)
class ScopedVariableSet(Action):
    """Set (``value=None``: delete) one user/org/project variable."""

    type: ClassVar[str] = "scoped/variable_set"
    scope: str
    name: str
    value: str | None


# -- instances -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InstanceStarted(Action):
    type: ClassVar[str] = "instances/started"
    instance_id: str
    prompt_id: str
    prompt_version: str
    at: float
    model: str | None = None
    values: dict[str, str] = field(default_factory=dict)
    track_in_runs: bool = True


@dataclass(frozen=True)
class VariableSet(Action):
    """Set one of an instance's own values (what typing in a form dispatches)."""

    type: ClassVar[str] = "instances/variable_set"
    instance_id: str
    name: str
    value: str


@dataclass(frozen=True)
class VariablesSet(Action):
    """Set one or more of an instance's own values in one step."""

    type: ClassVar[str] = "instances/variables_set"
    instance_id: str
    values: dict[str, str]


@dataclass(frozen=True)
class VariableUnset(Action):
    type: ClassVar[str] = "instances/variable_unset"
    instance_id: str
    name: str


@dataclass(frozen=True)
class ModelSet(Action):
    type: ClassVar[str] = "instances/model_set"
    instance_id: str
    model: str | None


@dataclass(frozen=True)
class HistoryCleared(Action):
    type: ClassVar[str] = "instances/history_cleared"
    instance_id: str


@dataclass(frozen=True)
class InstanceRestored(Action):
    """Put back the variables and sent conversation that produced a run."""

    type: ClassVar[str] = "instances/restored"
    instance_id: str
    prompt_version: str
    values: dict[str, str]
    history: tuple[ChatMessage, ...]
    model: str | None = None


@dataclass(frozen=True)
class InstanceClosed(Action):
    type: ClassVar[str] = "instances/closed"
    instance_id: str


# -- runs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExecutePending(Action):
    """A send: the exact request, rendered inside the transaction that records it.

    ``edits`` are the instance values the click carried (inputs not yet synced); they
    are applied to the instance by this same action, so the values shown and the values
    sent can never differ. ``messages`` is the whole request as sent.
    """

    type: ClassVar[str] = "runs/execute_pending"
    request_id: str
    instance_id: str
    prompt_id: str
    prompt_version: str
    provider: str
    model: str
    variables: tuple[tuple[str, str, str], ...]
    messages: tuple[ChatMessage, ...]
    settings: dict[str, Any]
    at: float
    user_content: str | None = None
    edits: dict[str, str] = field(default_factory=dict)
    cache_key: str | None = None
    action_index: int | None = None
    state_hash: str | None = None
    sweep_id: str | None = None
    session_id: str | None = None
    tracked: bool = True


@dataclass(frozen=True)
class ExecuteStarted(Action):
    type: ClassVar[str] = "runs/execute_started"
    request_id: str
    instance_id: str
    at: float


@dataclass(frozen=True)
class AttemptStarted(Action):
    type: ClassVar[str] = "runs/attempt_started"
    request_id: str
    instance_id: str
    attempt: int
    reason: str | None = None


@dataclass(frozen=True)
class ChunkReceived(Action):
    """Streamed text since the last chunk action (``n`` provider deltas)."""

    type: ClassVar[str] = "runs/chunk_received"
    request_id: str
    instance_id: str
    text: str
    n: int = 1
    ttft_ms: float | None = None


@dataclass(frozen=True, kw_only=True)
class _RunEnded(Action):
    """What every run end carries: the reply so far, usage and timings."""

    request_id: str
    instance_id: str
    at: float
    response: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    attempts: int = 0
    cost_usd: float | None = None


@dataclass(frozen=True, kw_only=True)
class ExecuteFulfilled(_RunEnded):
    type: ClassVar[str] = "runs/execute_fulfilled"
    cache_hit: bool = False


@dataclass(frozen=True, kw_only=True)
class ExecuteRejected(_RunEnded):
    """A run ended ``error`` or ``cancelled``; ``response`` keeps any partial text."""

    type: ClassVar[str] = "runs/execute_rejected"
    status: str
    error: str
    error_type: str | None = None


# -- sweeps ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepStarted(Action):
    type: ClassVar[str] = "sweeps/started"
    sweep_id: str
    prompt_id: str
    total: int


@dataclass(frozen=True)
class SweepFinished(Action):
    """A sweep (or eval) ended: its progress leaves the store (the job keeps its counts)."""

    type: ClassVar[str] = "sweeps/finished"
    sweep_id: str


@dataclass(frozen=True)
class SentCell:
    """One sweep cell's request, as rendered in the transaction that sent it.

    ``messages`` are the request exactly as sent and logged (roles and texts).
    """

    index: int
    run_id: str
    instance_id: str
    provider: str
    model: str
    variables: tuple[tuple[str, str, str], ...]
    messages: tuple[ChatMessage, ...]
    settings: dict[str, Any]
    state_hash: str
    cache_key: str | None = None


@dataclass(frozen=True)
class SweepCellsSent(Action):
    """Cells of a sweep sent together: each request rendered from the state this action
    applies to (the prompt version, scoped variables and settings of that instant).

    A sweep records its cells in batches (the cells that got a free slot at once), so a
    5,000-cell sweep is a few hundred actions, not tens of thousands.
    """

    type: ClassVar[str] = "sweeps/cells_sent"
    sweep_id: str
    prompt_id: str
    prompt_version: str
    at: float
    cells: tuple[SentCell, ...]
    action_index: int | None = None


@dataclass(frozen=True)
class CellEnd:
    """How one sweep cell ended (``run_id`` is None when it could not send at all)."""

    index: int
    status: str
    run_id: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SweepCellsFinished(Action):
    """Cells of a sweep (or an eval) ended; their runs are committed to the log."""

    type: ClassVar[str] = "sweeps/cells_finished"
    sweep_id: str
    cells: tuple[CellEnd, ...]


_ALL: tuple[type[Action], ...] = (
    PromptFetchPending,
    PromptFetchFulfilled,
    PromptFetchRejected,
    PromptInvalidated,
    ScopedFetchPending,
    ScopedFetchFulfilled,
    ScopedFetchRejected,
    ScopedVariableSet,
    InstanceStarted,
    VariableSet,
    VariablesSet,
    VariableUnset,
    ModelSet,
    HistoryCleared,
    InstanceRestored,
    InstanceClosed,
    ExecutePending,
    ExecuteStarted,
    AttemptStarted,
    ChunkReceived,
    ExecuteFulfilled,
    ExecuteRejected,
    SweepStarted,
    SweepCellsSent,
    SweepCellsFinished,
    SweepFinished,
)
ACTION_TYPES: dict[str, type[Action]] = {cls.type: cls for cls in _ALL}
