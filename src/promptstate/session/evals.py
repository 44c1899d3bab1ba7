"""``Session.evaluate`` / ``score`` / ``label``: thin facades over ``promptstate.evals``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptstate.engine.ports import Runtime
    from promptstate.evals.dataset import Dataset
    from promptstate.evals.evaluate import Eval, LoadedEval
    from promptstate.evals.results import EvalView
    from promptstate.runlog import AnyRunLog

__all__ = ["EvalsMixin"]


class EvalsMixin:
    """Evaluation methods of :class:`~promptstate.Session`."""

    runtime: Runtime
    runlog: AnyRunLog

    def evaluate(
        self,
        prompts: Any,
        dataset: Dataset,
        scorers: Any,
        *,
        models: Sequence[str] | None = None,
        repeat: int = 1,
        concurrency: int = 8,
        cache: bool | None = None,
        name: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Eval:
        """Run prompts x dataset rows x models (x repeat) and score every run.

        Parameters
        ----------
        prompts : str, Prompt, or a list of them
            Prompt ids (``"id"`` or ``"id@version"``) or :class:`~promptstate.Prompt`
            objects, e.g. several versions of one prompt.
        dataset : Dataset
        scorers : list
            ``ps.scorers.*`` scorers, LLM judges or callables ``(run, row)``.
        models : list of str, optional
            Default: each prompt's own model.
        repeat : int
            Runs per cell (confidence intervals need 2+ scores per group).
        concurrency : int
            Cells in flight at once.
        cache : bool, optional
            Reuse logged replies for identical requests (a re-run calls no model).

        Returns
        -------
        Eval
            Starts at once inside a running loop; ``await`` it. ``summary()``,
            ``rows()``, ``row(row_id)``, ``df()``, ``cancel()``.
        """
        from promptstate.evals.evaluate import Eval

        return Eval(
            self.runtime,
            self.runlog,
            prompts,
            dataset,
            scorers,
            models=models,
            repeat=repeat,
            concurrency=concurrency,
            cache=cache,
            name=name,
            settings=settings,
        )

    async def score(self, runs: EvalView | str, scorers: Any) -> EvalView | None:
        """Score logged runs again without calling the model they ran on.

        ``runs`` is an eval (its views then show the newest scores) or a SQL query
        returning ``run_id``. Returns the eval (None for a query).
        """
        from promptstate.evals.evaluate import LoadedEval
        from promptstate.evals.rescore import rescore
        from promptstate.evals.results import EvalView

        eval_id = await rescore(self.runtime, self.runlog, runs, scorers)
        if isinstance(runs, EvalView):
            return runs
        return None if eval_id is None else LoadedEval(self.runlog, eval_id)

    def load_eval(self, eval_id: str) -> LoadedEval:
        """An eval from the run log by id (raises ``UnknownEvalError``)."""
        from promptstate.evals.evaluate import LoadedEval

        return LoadedEval(self.runlog, eval_id)

    def label(
        self,
        run_id: str,
        value: float | None = None,
        *,
        thumbs: Any = None,
        comment: str | None = None,
        name: str = "human",
        user: str | None = None,
    ) -> dict[str, Any]:
        """Label a run by hand (``thumbs="up"``, a ``value``, a ``comment``).

        Stored in ``scores`` with ``source = 'human'``; returns the row written.
        """
        from promptstate.evals.rescore import label

        return label(
            self.runtime,
            self.runlog,
            run_id,
            value,
            thumbs=thumbs,
            comment=comment,
            name=name,
            user=user,
        )

    def label_message(self, msg: Mapping[str, Any]) -> dict[str, Any]:
        """Apply a widget's label message; returns ``{"ok": ..., ...}`` and never raises."""
        from promptstate.evals.rescore import handle_label_message

        return handle_label_message(self.runtime, self.runlog, msg)

    async def judge_pairwise(self, a: EvalView, b: EvalView, judge: Any) -> Any:
        """Ask a ``ps.scorers.judge_pairwise`` judge whether B beats A, row by row."""
        from promptstate.evals.rescore import pairwise

        return await pairwise(self.runtime, self.runlog, a, b, judge)
