"""Comparing two evals row by row: regressions, improvements, output diffs."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from promptstate.evals.results import EvalRow, EvalView

__all__ = ["Comparison", "RowChange", "compare"]


@dataclass(frozen=True)
class RowChange:
    """One (row, scorer) of a comparison; ``change`` is regression/improvement/same."""

    row_id: str
    scorer: str
    a_value: float | None
    b_value: float | None
    a_pass_rate: float | None
    b_pass_rate: float | None
    change: str
    a_output: str
    b_output: str
    expected: Any

    def diff(self) -> str:
        """Unified diff of output A -> output B."""
        return "\n".join(
            difflib.unified_diff(
                self.a_output.splitlines(), self.b_output.splitlines(), "a", "b", lineterm=""
            )
        )

    def expected_diff(self, which: str = "b") -> str:
        """Unified diff of ``expected`` -> the output of ``which`` ('a' or 'b')."""
        out = self.b_output if which == "b" else self.a_output
        exp = "" if self.expected is None else str(self.expected)
        return "\n".join(
            difflib.unified_diff(exp.splitlines(), out.splitlines(), "expected", which, lineterm="")
        )


def _agg(row: EvalRow) -> dict[str, tuple[float | None, float | None, str]]:
    per: dict[str, list[Any]] = {}
    for run in row.runs:
        for name, s in run.scores.items():
            per.setdefault(name, []).append((s, run.response or ""))
    out = {}
    for name, items in per.items():
        vals = [s.value for s, _ in items if s.value is not None]
        passes = [s.passed for s, _ in items if s.passed is not None]
        out[name] = (
            sum(vals) / len(vals) if vals else None,
            sum(passes) / len(passes) if passes else None,
            items[0][1],
        )
    return out


class Comparison(list[RowChange]):
    """Every (row, scorer) both evals scored; ``changed()`` keeps the ones that moved."""

    def changed(self) -> Comparison:
        """Only regressions and improvements."""
        return Comparison(c for c in self if c.change != "same")

    @property
    def regressions(self) -> Comparison:
        return Comparison(c for c in self if c.change == "regression")

    @property
    def improvements(self) -> Comparison:
        return Comparison(c for c in self if c.change == "improvement")

    def df(self) -> Any:
        """As a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame([c.__dict__ for c in self])

    def __repr__(self) -> str:
        return (
            f"Comparison(rows={len(self)}, regressions={len(self.regressions)}, "
            f"improvements={len(self.improvements)})"
        )


def _key(v: tuple[float | None, float | None, str]) -> float | None:
    return v[1] if v[1] is not None else v[0]


def compare(a: EvalView, b: EvalView) -> Comparison:
    """Row-by-row comparison of eval ``b`` against baseline ``a`` (matched by row id).

    A row regresses on a scorer when B's pass rate (or, with no pass/fail, its mean
    score) over the row's runs is lower than A's, and improves when it is higher.
    """
    rows_a = {r.row_id: r for r in a.rows()}
    out = Comparison()
    for rb in b.rows():
        ra = rows_a.get(rb.row_id)
        if ra is None:
            continue
        sa, sb = _agg(ra), _agg(rb)
        for name in sorted(set(sa) & set(sb)):
            ka, kb = _key(sa[name]), _key(sb[name])
            if ka is None or kb is None or abs(ka - kb) < 1e-12:
                change = "same"
            else:
                change = "improvement" if kb > ka else "regression"
            out.append(
                RowChange(
                    rb.row_id,
                    name,
                    sa[name][0],
                    sb[name][0],
                    sa[name][1],
                    sb[name][1],
                    change,
                    sa[name][2],
                    sb[name][2],
                    rb.expected,
                )
            )
    return out
