"""Evaluations: datasets, scorers (built-in, callables, LLM judges), scores in the run log.

Engine-level logic on the :class:`~promptstate.engine.ports.Runtime` and the run log's
evaluation tables; ``Session.evaluate`` / ``score`` / ``label`` are thin facades over it::

    ds = ps.Dataset([{"question": "2+2?", "expected": "4"}], name="math")
    ev = await session.evaluate("qa", ds, [ps.scorers.contains()], repeat=3)
    ev.summary()                      # pass rate / mean per prompt version x model x scorer
    ps.compare(baseline, ev).changed()
"""

from __future__ import annotations

from promptstate.errors import DatasetError, EvalFileError, ScorerError, UnknownEvalError
from promptstate.evals import scorers
from promptstate.evals.compare import Comparison, RowChange, compare
from promptstate.evals.dataset import Dataset, DatasetRow
from promptstate.evals.evaluate import Eval, EvalCell, LoadedEval
from promptstate.evals.judge import JudgeParseError
from promptstate.evals.results import EvalRow, EvalSummary, EvalView, RowRun, SummaryRow
from promptstate.evals.scoring import Score, Scorer, scorer

__all__ = [
    "Comparison",
    "Dataset",
    "DatasetError",
    "DatasetRow",
    "Eval",
    "EvalCell",
    "EvalFileError",
    "EvalRow",
    "EvalSummary",
    "EvalView",
    "JudgeParseError",
    "LoadedEval",
    "RowChange",
    "RowRun",
    "Score",
    "Scorer",
    "ScorerError",
    "SummaryRow",
    "UnknownEvalError",
    "compare",
    "scorer",
    "scorers",
]
