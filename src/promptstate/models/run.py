"""The one run schema: :class:`RunResult` is a row of the ``runs`` table.

Every column is a field of :class:`RunResult` declared with :func:`column` (its SQL
type). The DuckDB column list, the Arrow schema of a batch, the row serializer
(:func:`to_row`) and the parser (:func:`from_row`) are all derived from these fields, so
adding a column is one edit here plus one named migration in ``runlog/migrations.py``
that lists it (the migration takes the column's type from here).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Literal

from promptstate import errors
from promptstate.models.values import ChatMessage

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "DB_RUN_STATUSES",
    "RUN_COLUMNS",
    "TERMINAL_RUN_STATUSES",
    "RunResult",
    "RunStatus",
    "arrow_schema",
    "column",
    "column_sql",
    "from_row",
    "make_result",
    "model_label",
    "to_row",
    "utc",
]

RunStatus = Literal["queued", "running", "success", "error", "cancelled", "interrupted"]
TERMINAL_RUN_STATUSES: frozenset[str] = frozenset({"success", "error", "cancelled", "interrupted"})
ACTIVE_RUN_STATUSES: frozenset[str] = frozenset({"queued", "running"})
# the log has no 'queued': a run is 'running' from its first row on
DB_RUN_STATUSES: frozenset[str] = TERMINAL_RUN_STATUSES | {"running"}

_JSON = "JSON"
_TIMESTAMP = "TIMESTAMP"


def column(sql: str, default: Any = None) -> Any:
    """A dataclass field that is also a ``runs`` column of SQL type ``sql``."""
    return field(default=default, metadata={"sql": sql})


_EPOCH = dt.datetime(1970, 1, 1)


def utc(ts: float | None) -> dt.datetime | None:
    """Epoch seconds to a naive UTC datetime (the run log stores UTC)."""
    if ts is None:
        return None
    return _EPOCH + dt.timedelta(seconds=ts)  # = fromtimestamp(ts, utc), naive; faster


def _epoch(value: Any) -> float | None:
    if value is None or isinstance(value, int | float):
        return None if value is None else float(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        return float(value.timestamp())
    raise TypeError(f"not a timestamp: {value!r}")


@dataclass(frozen=True)
class RunResult:
    """What one send produced: a row of the ``runs`` table.

    Attributes
    ----------
    run_id, instance_id, prompt_id, prompt_version, provider, model : str
    status : str
        ``success``, ``error``, ``cancelled`` (``running`` / ``interrupted`` in the log).
    variables : dict
        ``{name: (value, source)}`` as sent.
    messages : tuple of ChatMessage
        The rendered request exactly as sent.
    response : str
        The reply text (partial for cancelled/error runs that streamed some text).
    error, error_type : str or None
        Why it failed, and the class name of the typed error (see
        :meth:`raise_for_status`).
    input_tokens, output_tokens : int or None
    latency_ms, ttft_ms : float or None
    started_at, finished_at : float or None
        Epoch seconds (UTC ``TIMESTAMP`` columns in the log).
    action_index : int or None
        Index of the store action that rendered this request (devtools history).
    """

    run_id: str = column("TEXT PRIMARY KEY", "")
    instance_id: str = column("TEXT", "")
    prompt_id: str = column("TEXT", "")
    prompt_version: str = column("TEXT", "")
    provider: str = column("TEXT", "")
    model: str = column("TEXT", "")
    status: str = column("TEXT NOT NULL", "running")
    variables: dict[str, tuple[str, str]] = field(
        default_factory=dict, metadata={"sql": _JSON, "json": "variables"}
    )
    messages: tuple[ChatMessage, ...] = field(
        default=(), metadata={"sql": _JSON, "json": "messages"}
    )
    response: str = column("TEXT", "")
    error: str | None = column("TEXT")
    input_tokens: int | None = column("BIGINT")
    output_tokens: int | None = column("BIGINT")
    latency_ms: float | None = column("DOUBLE")
    ttft_ms: float | None = column("DOUBLE")
    started_at: float | None = column(_TIMESTAMP)
    finished_at: float | None = column(_TIMESTAMP)
    sweep_id: str | None = column("TEXT")
    action_index: int | None = column("BIGINT")
    state_hash: str | None = column("TEXT")
    attempts: int = column("INTEGER", 0)
    cost_usd: float | None = column("DOUBLE")
    cache_key: str | None = column("TEXT")
    cache_hit: bool = column("BOOLEAN", False)
    settings: dict[str, Any] = field(
        default_factory=dict, metadata={"sql": _JSON, "json": "settings"}
    )
    session_id: str | None = column("TEXT")
    pid: int | None = column("INTEGER")
    hostname: str | None = column("TEXT")
    error_type: str | None = column("TEXT")
    # not a column: the exception itself, when it happened in this process
    exception: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """True for a successful run."""
        return self.status == "success"

    def raise_for_status(self) -> RunResult:
        """Return ``self`` if the run succeeded, else raise its typed error.

        The original exception is re-raised when it happened in this process; a run
        read back from the log raises an instance of the recorded error class (a
        :class:`~promptstate.PromptStateError` subclass) with the recorded message.
        """
        if self.status == "success":
            return self
        if self.exception is not None:
            raise self.exception
        cls = getattr(errors, self.error_type or "", None)
        if not (isinstance(cls, type) and issubclass(cls, errors.PromptStateError)):
            cls = errors.RunFailedError
        exc = cls.__new__(cls)
        Exception.__init__(exc, self.error or f"run {self.run_id} ended {self.status}")
        raise exc

    def __getitem__(self, column_name: str) -> Any:
        """A column value as stored in the log (JSON columns as text)."""
        if column_name not in _COLUMN_SET:
            raise KeyError(column_name)
        return to_row(self)[column_name]

    @property
    def row(self) -> dict[str, Any]:
        """Every column as stored in the log."""
        return to_row(self)

    def __repr__(self) -> str:
        resp = self.response if len(self.response) <= 60 else self.response[:57] + "..."
        extra = f", error={self.error!r}" if self.error else ""
        latency = None if self.latency_ms is None else round(self.latency_ms, 1)
        return (
            f"RunResult(status={self.status!r}, response={resp!r}, model="
            f"{model_label(self.provider, self.model)}, latency_ms={latency}, "
            f"run_id={self.run_id!r}{extra})"
        )


_DEFAULTS = {f.name: f.default for f in fields(RunResult) if f.default is not MISSING}
_FACTORIES = [
    (f.name, f.default_factory) for f in fields(RunResult) if f.default_factory is not MISSING
]
_FIELD_NAMES = frozenset(f.name for f in fields(RunResult))


def make_result(values: Mapping[str, Any]) -> RunResult:
    """``RunResult(**values)``, built without the frozen dataclass ``__init__``.

    For the engine's bulk paths (a sweep's cells, a re-score's runs), where building
    tens of thousands of results through the 33 ``object.__setattr__`` calls of the
    generated ``__init__`` is a large part of the cost. Unknown names raise TypeError,
    as ``RunResult(**values)`` would; fields not given take their defaults.
    """
    d = {**_DEFAULTS, **values}
    for name, factory in _FACTORIES:
        if name not in values:
            d[name] = factory()
    if len(d) != len(_FIELD_NAMES):
        unknown = sorted(set(values) - _FIELD_NAMES)
        raise TypeError(f"RunResult got unexpected field(s) {unknown}")
    run = object.__new__(RunResult)
    run.__dict__.update(d)
    return run


def model_label(provider: str, model: str) -> str:
    """One spelling of a model everywhere: ``echo``, ``openai:gpt-4o``."""
    if provider == model or not model:
        return provider
    return f"{provider}:{model}"


_COLUMN_FIELDS = tuple(f for f in fields(RunResult) if "sql" in f.metadata)
RUN_COLUMNS: tuple[str, ...] = tuple(f.name for f in _COLUMN_FIELDS)
_COLUMN_SET = frozenset(RUN_COLUMNS)
_SQL_TYPES = {f.name: str(f.metadata["sql"]) for f in _COLUMN_FIELDS}


def column_sql(name: str) -> str:
    """The SQL type of a ``runs`` column (``TEXT``, ``BIGINT``, ``JSON``...)."""
    return _SQL_TYPES[name]


# json.dumps(obj, ensure_ascii=False) builds an encoder per call; one is enough
_dump: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False).encode
_esc: Callable[[str], str] = json.encoder.encode_basestring


def _variables_json(v: dict[str, tuple[str, str]]) -> str:
    try:  # the text json.dumps writes, without building the nested dicts first
        return (
            "{"
            + ", ".join(
                f'{_esc(n)}: {{"value": {_esc(val)}, "source": {_esc(src)}}}'
                for n, (val, src) in v.items()
            )
            + "}"
        )
    except TypeError:  # a hand-built result with non-text values
        return _dump({n: {"value": val, "source": src} for n, (val, src) in v.items()})


def _messages_json(ms: tuple[ChatMessage, ...]) -> str:
    try:
        return (
            "["
            + ", ".join(f'{{"role": {_esc(m.role)}, "content": {_esc(m.content)}}}' for m in ms)
            + "]"
        )
    except TypeError:
        return _dump([{"role": m.role, "content": m.content} for m in ms])


# each JSON column's value -> its text, exactly as json.dumps(..., ensure_ascii=False)
_TO_JSON: dict[str, Callable[[Any], str]] = {
    "variables": _variables_json,
    "messages": _messages_json,
    "settings": lambda s: _dump(dict(s)),
}
_FROM_JSON: dict[str, Callable[[Any], Any]] = {
    "variables": lambda d: {n: (v["value"], v["source"]) for n, v in (d or {}).items()},
    "messages": lambda ms: tuple(ChatMessage(m["role"], m["content"]) for m in (ms or [])),
    "settings": lambda d: dict(d or {}),
}


_PLAIN_COLUMNS = tuple(
    f.name for f in _COLUMN_FIELDS if f.metadata["sql"] not in (_JSON, _TIMESTAMP)
)
_JSON_COLUMNS = tuple(
    (f.name, _TO_JSON[f.name]) for f in _COLUMN_FIELDS if f.metadata["sql"] == _JSON
)
_TIMESTAMP_COLUMNS = tuple(f.name for f in _COLUMN_FIELDS if f.metadata["sql"] == _TIMESTAMP)


def to_row(
    result: RunResult, earlier: tuple[RunResult, Mapping[str, Any]] | None = None
) -> dict[str, Any]:
    """The ``runs`` row for a result: JSON columns as text, timestamps as UTC datetimes.

    ``earlier``: a result of the same run and the row made from it (the ``running`` row
    when this is the terminal one). A JSON column whose value is unchanged (``==``,
    far cheaper than serializing) reuses that row's text instead of being dumped again.
    """
    # the plain columns straight from the instance dict (a frozen dataclass has one)
    values = result.__dict__
    row = {name: values[name] for name in _PLAIN_COLUMNS}
    prev, prev_row = earlier if earlier is not None else (None, None)
    for name, dump in _JSON_COLUMNS:
        value = values[name]
        if prev_row is not None and value == getattr(prev, name):
            row[name] = prev_row[name]
        else:
            row[name] = dump(value)
    for name in _TIMESTAMP_COLUMNS:
        row[name] = utc(values[name])
    return {name: row[name] for name in RUN_COLUMNS}  # in column order, as before


def from_row(row: Mapping[str, Any]) -> RunResult:
    """Parse a ``runs`` row (as returned by a query) into a :class:`RunResult`."""
    kwargs: dict[str, Any] = {}
    for f in _COLUMN_FIELDS:
        if f.name not in row:
            continue
        value = row[f.name]
        kind = f.metadata["sql"]
        if kind == _JSON:
            parsed = json.loads(value) if isinstance(value, str) else value
            value = _FROM_JSON[f.name](parsed)
        elif kind == _TIMESTAMP:
            value = _epoch(value)
        elif value is None and f.default is not MISSING and f.default is not None:
            value = f.default
        kwargs[f.name] = value
    return RunResult(**kwargs)


_ARROW_CACHE: list[Any] = []


def arrow_schema() -> Any:
    """The Arrow schema of a batch of ``runs`` rows (pyarrow is imported on first use)."""
    if not _ARROW_CACHE:
        import pyarrow as pa

        types: dict[str, Callable[[], Any]] = {
            "BIGINT": pa.int64,
            "INTEGER": pa.int32,
            "DOUBLE": pa.float64,
            "BOOLEAN": pa.bool_,
            _TIMESTAMP: lambda: pa.timestamp("us"),
        }
        _ARROW_CACHE.append(
            pa.schema(
                [
                    (name, types.get(_SQL_TYPES[name].split()[0], pa.string)())
                    for name in RUN_COLUMNS
                ]
            )
        )
    return _ARROW_CACHE[0]
