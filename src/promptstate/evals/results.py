"""Reading an eval back: summary with confidence intervals, rows, drill-down, relation."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from promptstate.evals.scoring import Score
from promptstate.evals.stats import mean_ci, wilson

__all__ = [
    "EvalRow",
    "EvalStore",
    "EvalSummary",
    "EvalView",
    "RowRun",
    "SummaryRow",
    "group_label",
]


class EvalStore(Protocol):
    """The run log as evaluations use it (``RunLog`` implements it)."""

    def sql(self, query: str, params: Any = None, *, read_only: bool = False) -> Any: ...
    def write_scores(self, rows: Any) -> Any: ...
    def save_dataset(self, meta: Any, rows: Any) -> Any: ...
    def save_eval(self, row: Any) -> Any: ...
    def write_eval_runs(self, rows: Any) -> Any: ...
    def flush(self, timeout: float | None = 120.0) -> None: ...


_LATEST_SCORES = (
    "SELECT * FROM scores WHERE run_id IN (SELECT run_id FROM eval_runs WHERE eval_id = ?) "
    "QUALIFY row_number() OVER (PARTITION BY run_id, scorer "
    "ORDER BY created_at DESC, score_id DESC) = 1"
)
_CELLS = (
    "SELECT er.cell, er.row_id, er.position, er.prompt_id, er.prompt_version, er.model, "
    "er.repetition, er.run_id, coalesce(r.status, er.status) AS status, "
    "coalesce(r.error, er.error) AS error, r.response, r.latency_ms, r.cost_usd, "
    "r.input_tokens, r.output_tokens, s.scorer, s.scorer_version, s.value, s.passed, "
    "s.reason, s.source, s.judge_run_id, s.errored, dr.data AS row_data "
    "FROM eval_runs er JOIN evals e ON e.eval_id = er.eval_id "
    "LEFT JOIN runs r ON r.run_id = er.run_id "
    f"LEFT JOIN ({_LATEST_SCORES}) s ON s.run_id = er.run_id "
    "LEFT JOIN dataset_rows dr ON dr.dataset_id = e.dataset_id "
    "AND dr.version = e.dataset_version AND dr.position = er.position "
    "WHERE er.eval_id = ? ORDER BY er.position, er.prompt_id, er.prompt_version, er.model, "
    "er.repetition, s.scorer"
)


@dataclass(frozen=True)
class SummaryRow:
    """One (prompt version, model, scorer) of a summary; ``*_low/high`` are 95% bounds."""

    prompt_id: str
    prompt_version: str
    model: str
    scorer: str
    n: int
    passed: int
    pass_rate: float
    pass_low: float
    pass_high: float
    mean: float
    mean_low: float
    mean_high: float
    errors: int


def _f(x: float, pct: bool = False) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "-"
    return f"{x * 100:.1f}%" if pct else f"{x:.3f}"


class EvalSummary(list[SummaryRow]):
    """Summary rows; prints as a table, ``.df()`` gives pandas."""

    def records(self) -> list[dict[str, Any]]:
        """One dict per row (NaN bounds as None), for JSON."""
        out = []
        for r in self:
            d = dict(r.__dict__)
            out.append(
                {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
            )
        return out

    def df(self) -> Any:
        """As a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([r.__dict__ for r in self])

    def table(self) -> str:
        """A plain-text table."""
        head = ["prompt", "model", "scorer", "n", "pass rate [95% CI]", "mean [95% CI]", "errors"]
        body = [
            [
                f"{r.prompt_id}@{r.prompt_version[:8]}",
                r.model,
                r.scorer,
                str(r.n),
                f"{_f(r.pass_rate, True)} [{_f(r.pass_low, True)}, {_f(r.pass_high, True)}]",
                f"{_f(r.mean)} [{_f(r.mean_low)}, {_f(r.mean_high)}]",
                str(r.errors),
            ]
            for r in self
        ]
        widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
        lines = [
            "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)) for row in [head, *body]
        ]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table() if self else "EvalSummary([])"


@dataclass
class RowRun:
    """One run of a row (a prompt version x model x repetition) and its scores."""

    prompt_id: str
    prompt_version: str
    model: str
    repetition: int
    run_id: str | None
    status: str
    response: str | None
    error: str | None
    scores: dict[str, Score] = field(default_factory=dict)


@dataclass
class EvalRow:
    """A dataset row of an eval with every run made for it."""

    row_id: str
    position: int
    variables: dict[str, str]
    expected: Any
    metadata: dict[str, Any]
    runs: list[RowRun] = field(default_factory=list)


class EvalView:
    """Read paths shared by a live :class:`~promptstate.evals.evaluate.Eval` and a loaded one."""

    eval_id: str
    _log: EvalStore

    def _cells(self) -> list[dict[str, Any]]:
        rel = self._log.sql(_CELLS, [self.eval_id, self.eval_id])
        cols = list(rel.columns)
        return [dict(zip(cols, r, strict=True)) for r in rel.fetchall()]

    def relation(self) -> Any:
        """A DuckDB relation: one row per (run, scorer) with the run's output and the score."""
        return self._log.sql(_CELLS, [self.eval_id, self.eval_id])

    def df(self) -> Any:
        """The :meth:`relation` as a pandas DataFrame."""
        return self.relation().df()

    def rows(self) -> list[EvalRow]:
        """Every dataset row with its runs and their latest scores."""
        out: dict[str, EvalRow] = {}
        runs: dict[tuple[str, int], RowRun] = {}
        for c in self._cells():
            data = json.loads(c["row_data"]) if c["row_data"] else {}
            row = out.get(c["row_id"])
            if row is None:
                row = out[c["row_id"]] = EvalRow(
                    c["row_id"],
                    c["position"],
                    data.get("variables", {}),
                    data.get("expected"),
                    data.get("metadata", {}),
                )
            key = (c["row_id"], c["cell"])
            rr = runs.get(key)
            if rr is None:
                rr = runs[key] = RowRun(
                    c["prompt_id"],
                    c["prompt_version"],
                    c["model"],
                    c["repetition"],
                    c["run_id"],
                    c["status"],
                    c["response"],
                    c["error"],
                )
                row.runs.append(rr)
            if c["scorer"] is not None:
                rr.scores[c["scorer"]] = Score(
                    c["value"], c["passed"], c["reason"], c["judge_run_id"], bool(c["errored"])
                )
        return list(out.values())

    def row(self, row_id: str) -> EvalRow:
        """One row's drill-down (KeyError when the eval has no such row)."""
        for r in self.rows():
            if r.row_id == row_id:
                return r
        raise KeyError(row_id)

    def summary(self) -> EvalSummary:
        """Pass rate and mean score per prompt version x model x scorer, with 95% CIs.

        Pass rates get a Wilson interval, means a t interval (bounds need 2+ scores).
        """
        groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
        for c in self._cells():
            if c["scorer"] is None:
                continue
            key = (c["prompt_id"], c["prompt_version"], c["model"], c["scorer"])
            groups.setdefault(key, []).append(c)
        out = EvalSummary()
        for (pid, ver, model, scorer), cs in groups.items():
            judged = [c["passed"] for c in cs if c["passed"] is not None]
            values = [float(c["value"]) for c in cs if c["value"] is not None]
            k = sum(1 for p in judged if p)
            low, high = wilson(k, len(judged))
            mean, mlow, mhigh = mean_ci(values)
            out.append(
                SummaryRow(
                    pid,
                    ver,
                    model,
                    scorer,
                    len(cs),
                    k,
                    k / len(judged) if judged else math.nan,
                    low,
                    high,
                    mean,
                    mlow,
                    mhigh,
                    sum(1 for c in cs if c["errored"]),
                )
            )
        return out


def group_label(r: SummaryRow | Sequence[str]) -> str:
    """``prompt@version model scorer`` for messages."""
    if isinstance(r, SummaryRow):
        return f"{r.prompt_id}@{r.prompt_version[:8]} {r.model} {r.scorer}"
    return " ".join(r)
