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
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from promptstate.errors import ScorerError
from promptstate.evals.dataset import DatasetRow
from promptstate.models.redact import redact
from promptstate.models.run import RunResult

__all__ = [
    "Score",
    "ScoreContext",
    "Scorer",
    "as_scorer",
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
    """

    source = "auto"

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
