"""Scorers: a name, a version, and a check of one run against one dataset row.

A scorer's result is a :class:`Score`. Any callable ``(run, row)`` returning ``bool``,
a number or a :class:`Score` (sync or ``async``) is a scorer; a scorer that raises
gives an error score (``value`` None, ``passed`` False, ``reason`` the redacted
exception text) and never stops an evaluation.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptstate.errors import ScorerError
from promptstate.evals.dataset import DatasetRow
from promptstate.models.redact import redact
from promptstate.models.run import RunResult

__all__ = [
    "BatchCheck",
    "RunBatch",
    "Score",
    "ScoreContext",
    "Scorer",
    "as_scorer",
    "columnar",
    "error_score",
    "scorer",
    "to_score",
]


@dataclass(frozen=True)
class Score:
    """One scorer's verdict on one run.

    Attributes
    ----------
    value : float or None
        The score (1.0 / 0.0 for a pass/fail check; None for an error).
    passed : bool or None
        Whether the run passed (None for a score with no threshold).
    reason : str or None
    judge_run_id : str or None
        The judge's own run, for an LLM judge.
    errored : bool
        The scorer failed (raised, or its judge's reply could not be parsed).
    """

    value: float | None
    passed: bool | None = None
    reason: str | None = None
    judge_run_id: str | None = None
    errored: bool = False


@dataclass
class ScoreContext:
    """What a scorer that calls a model (an LLM judge) needs: the engine's runtime."""

    rt: Any  # promptstate.engine.ports.Runtime
    cache: bool | None = None


log = logging.getLogger("promptstate")


class RunBatch:
    """Many runs to score at once, held as columns (re-scoring reads them in one fetch).

    A scorer with a batch check (the built-ins) reads whole columns; any other scorer
    gets each run as a :class:`RunResult` (and its dataset row), built on first use.

    Parameters
    ----------
    n : int
        How many runs.
    column : callable
        ``column(name)`` -> the ``runs`` column ``name`` as a list of ``n`` values, as
        the run's :class:`RunResult` field holds it (``response`` is never None).
    run, row : callable
        ``run(k)`` -> the k-th :class:`RunResult`; ``row(k)`` -> its :class:`DatasetRow`.
    """

    def __init__(
        self,
        n: int,
        column: Callable[[str], list[Any]],
        run: Callable[[int], RunResult],
        row: Callable[[int], DatasetRow],
    ) -> None:
        self._n = n
        self._column = column
        self._cols: dict[str, list[Any]] = {}
        self.run = run
        self.row = row

    def __len__(self) -> int:
        return self._n

    def column(self, name: str) -> list[Any]:
        """The column ``name`` (converted once, then shared by every scorer)."""
        got = self._cols.get(name)
        if got is None:
            got = self._cols[name] = self._column(name)
        return got


# ``check(runs, indices)`` -> one result per index (bool, number or Score), exactly what
# the scorer's function returns for ``(runs.run(k), runs.row(k))``
BatchCheck = Callable[[RunBatch, Sequence[int]], Sequence[Any]]


_NO_ROW = DatasetRow("", 0, {})  # for checks that never read the row


class _Fields:
    """The run fields a built-in check reads, set run after run instead of a RunResult."""

    __slots__ = ("cost_usd", "input_tokens", "latency_ms", "output_tokens", "response")


def columnar(
    check: Callable[[Any, DatasetRow], Any], names: Sequence[str], uses_row: bool
) -> BatchCheck:
    """A batch check that calls ``check`` itself on each run, with no RunResult built.

    ``check`` reads only the run fields ``names`` (and the row when ``uses_row``); it
    gets an object holding those fields, reused run after run.
    """

    def many(runs: RunBatch, idx: Sequence[int]) -> list[Any]:
        cols = [(n, runs.column(n)) for n in names]
        view = _Fields()
        out = []
        for k in idx:
            for n, col in cols:
                setattr(view, n, col[k])
            out.append(check(view, runs.row(k) if uses_row else _NO_ROW))
        return out

    return many


def _source(fn: Any) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        code = getattr(fn, "__code__", None)
        if code is not None:
            return f"{fn.__qualname__}:{hashlib.sha256(code.co_code).hexdigest()}"
        return f"{type(fn).__module__}.{type(fn).__qualname__}"


def _version(source: str, params: Mapping[str, Any]) -> str:
    raw = json.dumps({"src": source, "params": params}, sort_keys=True, default=repr)
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def to_score(result: Any, threshold: float | None = None) -> Score:
    """Normalize a scorer's return value (bool, number or :class:`Score`)."""
    if isinstance(result, Score):
        if result.passed is None and threshold is not None and result.value is not None:
            return Score(
                result.value, result.value >= threshold, result.reason, result.judge_run_id
            )
        return result
    if isinstance(result, bool):
        return Score(1.0 if result else 0.0, result)
    if isinstance(result, int | float):
        value = float(result)
        if not math.isfinite(value):
            raise ScorerError(f"scorer returned a non-finite number {result!r}")
        return Score(value, None if threshold is None else value >= threshold)
    raise ScorerError(
        f"scorer returned {type(result).__name__}; return a bool, a number or a Score"
    )


_PASS, _FAIL = Score(1.0, True), Score(0.0, False)


def error_score(exc: BaseException, judge_run_id: str | None = None) -> Score:
    """The score recorded for a scorer that failed: the cause, redacted."""
    return Score(None, False, redact(f"{type(exc).__name__}: {exc}"), judge_run_id, True)


class Scorer:
    """A named, versioned check of a run against a dataset row.

    Parameters
    ----------
    fn : callable
        ``fn(run, row)`` -> bool, number or :class:`Score` (may be ``async``).
    name : str, optional
        Default: the function's name.
    params : mapping, optional
        What configures it; part of its version.
    threshold : float, optional
        A number >= threshold passes.

    ``version`` is a hash of the function's source and ``params``: editing the code,
    the parameters or a judge's rubric gives a new version.

    ``batch`` (optional, set by the built-ins) is the same check over many runs'
    columns, ``batch(runs, indices)`` with ``runs`` a :class:`RunBatch`: re-scoring
    uses it instead of calling ``fn`` run by run (see :meth:`score_many`).
    """

    source = "auto"
    # the same check over many runs' columns (set by the built-ins); see score_many
    batch: BatchCheck | None = None

    def __init__(
        self,
        fn: Callable[[RunResult, DatasetRow], Any],
        *,
        name: str | None = None,
        params: Mapping[str, Any] | None = None,
        threshold: float | None = None,
    ) -> None:
        if not callable(fn):
            raise ScorerError(f"a scorer must be callable, not {type(fn).__name__}")
        label = name or getattr(fn, "__name__", None) or type(fn).__name__
        if not isinstance(label, str) or not label.strip() or label == "<lambda>":
            raise ScorerError("give this scorer a name (name=...): it is stored with each score")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int | float)
        ):
            raise ScorerError(f"threshold must be a number, not {threshold!r}")
        self.fn = fn
        self.name = label
        self.params = dict(params or {})
        self.threshold = threshold
        self.is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            type(fn).__call__
        )
        self.version = _version(_source(fn), {**self.params, "threshold": threshold})

    def check(self, rt: Any) -> None:
        """Validate against the runtime before anything runs (judges resolve their model)."""

    def score_sync(self, run: RunResult, row: DatasetRow) -> Score:
        """Score one run synchronously; never raises (an error score instead)."""
        try:
            result = self.fn(run, row)
            if result is True or result is False:  # the common case, kept cheap
                return _PASS if result else _FAIL
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise ScorerError(f"scorer {self.name!r} returned an awaitable: make it async def")
            return to_score(result, self.threshold)
        except Exception as exc:
            return error_score(exc)

    def score_many(self, runs: RunBatch, indices: Sequence[int]) -> list[Score]:
        """Score the runs at ``indices`` synchronously: ``score_sync`` of each, in order.

        With a :attr:`batch` check the runs are scored column by column, with no
        :class:`RunResult` built; if that check raises anywhere (or a result does not
        normalize), every run is scored again one by one, so each failure is recorded
        against its own run exactly as :meth:`score_sync` records it.
        """
        check = self.batch
        if check is not None:
            try:
                got = check(runs, indices)
                if len(got) == len(indices):
                    threshold = self.threshold
                    return [
                        _PASS if r is True else _FAIL if r is False else to_score(r, threshold)
                        for r in got
                    ]
                log.debug("promptstate: %s batch check gave %d results", self.name, len(got))
            except Exception as exc:  # recorded per run below
                log.debug("promptstate: %s batch check fell back to per run: %s", self.name, exc)
        return [self.score_sync(runs.run(k), runs.row(k)) for k in indices]

    async def score(self, run: RunResult, row: DatasetRow, ctx: ScoreContext | None) -> Score:
        """Score one run; never raises except on cancellation (an error score instead)."""
        try:
            result = self.fn(run, row)
            if inspect.isawaitable(result):
                result = await result
            return to_score(result, self.threshold)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return error_score(exc)

    def __repr__(self) -> str:
        return f"Scorer({self.name!r}, version={self.version!r})"


def scorer(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    threshold: float | None = None,
    params: Mapping[str, Any] | None = None,
) -> Any:
    """Make a :class:`Scorer` from a function; usable as ``@scorer`` or ``@scorer(name=...)``."""
    if fn is None:
        return lambda f: Scorer(f, name=name, threshold=threshold, params=params)
    return Scorer(fn, name=name, threshold=threshold, params=params)


def as_scorer(obj: Any) -> Scorer:
    """A :class:`Scorer` as is, a plain callable wrapped (named after the function)."""
    if isinstance(obj, Scorer):
        return obj
    if callable(obj):
        return Scorer(obj)
    raise ScorerError(f"not a scorer: {obj!r} (give a ps.scorers.* scorer or a callable)")
