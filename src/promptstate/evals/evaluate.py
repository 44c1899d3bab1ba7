"""Evaluations: prompts x dataset rows x models x repeats, run live and scored.

:class:`Eval` runs like a :class:`~promptstate.engine.sweep.Sweep`: it starts at once
inside a running loop, its progress is in the store (``state.sweeps[eval_id]``, the same
actions a sweep dispatches), :meth:`Eval.cancel` works from any thread, and a failing
cell or scorer never stops the others. Every run carries ``sweep_id = eval_id``;
``eval_runs`` maps each cell to its run and dataset row, ``scores`` holds the scores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from promptstate.core.actions import CellEnd, InstanceClosed, SweepCellsFinished, SweepStarted
from promptstate.engine.execute import execute
from promptstate.engine.job import Job
from promptstate.engine.ports import Runtime
from promptstate.engine.prompts import ensure_prompt_version, fetch_prompt, start_instance
from promptstate.engine.send import begin_send
from promptstate.errors import PromptStateError, UnknownPromptError, VariableError
from promptstate.evals.dataset import Dataset, DatasetRow
from promptstate.evals.judge import _cache_prompt
from promptstate.evals.results import EvalStore, EvalView
from promptstate.evals.scoring import Score, ScoreContext, Scorer, as_scorer
from promptstate.models.prompt import Prompt
from promptstate.models.redact import redact
from promptstate.models.run import RunResult, utc

__all__ = [
    "Eval",
    "EvalCell",
    "LoadedEval",
    "resolve_prompts",
    "save_dataset",
    "score_rows",
    "scores_to_rows",
]

log = logging.getLogger("promptstate")


@dataclass
class EvalCell:
    """One (prompt version, row, model, repetition) of an eval and, once done, its run."""

    index: int
    prompt_id: str
    prompt_version: str
    row: DatasetRow
    model: str
    repetition: int
    result: RunResult | None = None
    status: str = "pending"
    error: str | None = None


def resolve_prompts(rt: Runtime, prompts: Any) -> list[Prompt]:
    """Prompt ids (``"id"`` or ``"id@version"``) or :class:`Prompt` objects, cached in the store."""
    items = [prompts] if isinstance(prompts, str | Prompt) else list(prompts)
    if not items:
        raise UnknownPromptError("(none)", [])
    out: dict[tuple[str, str], Prompt] = {}
    for p in items:
        if isinstance(p, Prompt):
            _cache_prompt(rt, p)
            prompt = p
        elif isinstance(p, str) and "@" in p:
            pid, _, ver = p.partition("@")
            prompt = ensure_prompt_version(rt, pid, ver).prompt
        elif isinstance(p, str):
            prompt = fetch_prompt(rt, p).prompt
        else:
            raise UnknownPromptError(repr(p))
        out.setdefault((prompt.id, prompt.version), prompt)
    return list(out.values())


def _check_scorers(rt: Runtime, scorers: Any) -> list[Scorer]:
    items = [scorers] if isinstance(scorers, Scorer) or callable(scorers) else list(scorers or [])
    out = [as_scorer(s) for s in items]
    names = [s.name for s in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        from promptstate.errors import ScorerError

        raise ScorerError(f"two scorers are named {', '.join(map(repr, dup))}: give one name=")
    for s in out:
        s.check(rt)
    return out


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise VariableError(f"{name} must be an integer >= 1, not {value!r}")
    return value


async def score_rows(
    scorers: Sequence[Scorer], run: RunResult, row: DatasetRow, ctx: ScoreContext
) -> dict[str, Score]:
    """Every scorer's score of one run (a run that did not succeed fails them all)."""
    if run.status != "success":
        why = f"run ended {run.status}: {run.error or ''}".strip()
        return {s.name: Score(0.0, False, redact(why)) for s in scorers}
    return {s.name: await s.score(run, row, ctx) for s in scorers}


def scores_to_rows(
    run_id: str,
    scores: Mapping[str, Score],
    scorers: Mapping[str, Scorer],
    eval_id: str | None,
    session_id: str,
    at: float,
) -> list[dict[str, Any]]:
    """``scores`` table rows for one run."""
    ts = utc(at)
    return [
        {
            "score_id": uuid.uuid4().hex,
            "run_id": run_id,
            "scorer": name,
            "scorer_version": scorers[name].version,
            "value": s.value,
            "passed": s.passed,
            "reason": None if s.reason is None else redact(s.reason),
            "source": scorers[name].source,
            "judge_run_id": s.judge_run_id,
            "eval_id": eval_id,
            "errored": s.errored,
            "session_id": session_id,
            "created_at": ts,
        }
        for name, s in scores.items()
    ]


def save_dataset(rt: Runtime, store: EvalStore, dataset: Dataset) -> Any:
    """Queue the dataset version and its rows (one transaction; same rows: no-op)."""
    rows = [{"row_id": r.row_id, "position": r.position, "data": r.data()} for r in dataset.rows]
    return store.save_dataset(dataset.meta(utc(rt.clock())), rows)


class Eval(EvalView, Job):
    """A running (or finished) evaluation; ``await`` it for the finished eval.

    Created by ``Session.evaluate``. Read it with :meth:`summary`, :meth:`rows`,
    :meth:`row`, :meth:`df` / :meth:`relation`; ``eval_id`` names it in the log.
    """

    def __init__(
        self,
        rt: Runtime,
        store: EvalStore,
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
    ) -> None:
        if not isinstance(dataset, Dataset):
            raise VariableError(f"dataset must be a ps.Dataset, not {type(dataset).__name__}")
        self.repeat = _positive("repeat", repeat)
        self.concurrency = _positive("concurrency", concurrency)
        resolved = resolve_prompts(rt, prompts)
        for p in resolved:
            dataset.check_prompt(p)
        self.scorers = _check_scorers(rt, scorers)
        model_list = list(models) if models else None
        for m in model_list or []:
            if not isinstance(m, str) or not m.strip():
                from promptstate.errors import UnknownProviderError

                raise UnknownProviderError(repr(m))
            rt.providers.resolve(m)
        self._rt = rt
        self._log = store
        self.dataset = dataset
        self.prompts = resolved
        self.cache = cache
        self.settings = dict(settings or {})
        self.name = name or f"{'+'.join(dict.fromkeys(p.id for p in resolved))} on {dataset.name}"
        self.eval_id = self._job_id = rt.new_id()
        self.cells: list[EvalCell] = []
        for p in resolved:
            for row in dataset.rows:
                for m in model_list or [p.model]:
                    for k in range(self.repeat):
                        self.cells.append(EvalCell(len(self.cells), p.id, p.version, row, m, k))
        self._init_job()
        save_dataset(rt, store, dataset)
        store.save_eval(
            {
                "eval_id": self.eval_id,
                "name": self.name,
                "dataset_id": dataset.name,
                "dataset_version": dataset.version,
                "config": {
                    "prompts": [[p.id, p.version] for p in resolved],
                    "models": model_list,
                    "repeat": self.repeat,
                    "cache": cache,
                    "scorers": [[s.name, s.version] for s in self.scorers],
                },
                "session_id": rt.session_id,
                "created_at": utc(rt.clock()),
            }
        )
        rt.store.dispatch(
            SweepStarted(
                sweep_id=self.eval_id, prompt_id=f"eval:{self.name}", total=len(self.cells)
            )
        )
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            self._start()

    # -- progress ------------------------------------------------------------------------------

    @property
    def done(self) -> int:
        """Cells that have ended (any status)."""
        return self._progress().done

    @property
    def errors(self) -> int:
        """Cells whose run ended ``error`` (or could not send)."""
        return self._progress().errors

    # -- running -----------------------------------------------------------------------------

    async def _run(self) -> None:
        sem = asyncio.Semaphore(self.concurrency)
        loop = asyncio.get_running_loop()
        self._cell_tasks = [loop.create_task(self._run_cell(c, sem)) for c in self.cells]
        try:
            await asyncio.gather(*self._cell_tasks, return_exceptions=True)
            await asyncio.to_thread(self._log.flush)
        finally:
            self._close_progress()

    async def _run_cell(self, cell: EvalCell, sem: asyncio.Semaphore) -> None:
        rt = self._rt
        result: RunResult | None = None
        try:
            async with sem:
                if self._cancel_requested:
                    raise asyncio.CancelledError
                iid = start_instance(
                    rt, cell.prompt_id, cell.row.variables, version=cell.prompt_version
                )
                try:
                    prepared = begin_send(
                        rt,
                        iid,
                        None,
                        model=cell.model,
                        settings=self.settings or None,
                        cache=self.cache,
                        sweep_id=self.eval_id,
                    )
                    cell.result = result = None
                    try:
                        result = await execute(rt, prepared)
                    except asyncio.CancelledError:
                        run = rt.store.get_state().runs.get(prepared.action.request_id)
                        if run is not None:
                            from promptstate.engine.execute import run_result

                            cell.result = run_result(run)
                        raise
                finally:
                    rt.store.dispatch(InstanceClosed(instance_id=iid))
                ctx = ScoreContext(rt, self.cache)
                scores = await score_rows(self.scorers, result, cell.row, ctx)
        except asyncio.CancelledError:
            self._finish(cell, cell.result, "cancelled", "cancelled", {})
            return
        except PromptStateError as exc:
            rt.task_errors.append(exc)
            del rt.task_errors[:-50]
            self._finish(cell, None, "error", redact(f"{type(exc).__name__}: {exc}"), {})
            return
        self._finish(cell, result, result.status, result.error, scores)

    def _finish(
        self,
        cell: EvalCell,
        result: RunResult | None,
        status: str,
        error: str | None,
        scores: dict[str, Score],
    ) -> None:
        cell.result, cell.status, cell.error = result, status, error
        run_id = None if result is None else result.run_id
        self._log.write_eval_runs(
            [
                {
                    "eval_id": self.eval_id,
                    "cell": cell.index,
                    "run_id": run_id,
                    "row_id": cell.row.row_id,
                    "position": cell.row.position,
                    "prompt_id": cell.prompt_id,
                    "prompt_version": cell.prompt_version,
                    "model": cell.model,
                    "repetition": cell.repetition,
                    "status": status,
                    "error": error,
                }
            ]
        )
        if scores and run_id is not None:
            by_name = {s.name: s for s in self.scorers}
            self._log.write_scores(
                scores_to_rows(
                    run_id, scores, by_name, self.eval_id, self._rt.session_id, time.time()
                )
            )
        self._rt.store.dispatch(
            SweepCellsFinished(
                sweep_id=self.eval_id,
                cells=(CellEnd(index=cell.index, status=status, run_id=run_id, error=error),),
            )
        )

    def __repr__(self) -> str:
        return (
            f"Eval({self.name!r}, cells={len(self.cells)}, done={self.done}, "
            f"errors={self.errors}, eval_id={self.eval_id!r})"
        )


class LoadedEval(EvalView):
    """An eval read back from the run log by id (``session.load_eval(eval_id)``)."""

    def __init__(self, store: EvalStore, eval_id: str) -> None:
        from promptstate.errors import UnknownEvalError

        rel = store.sql("SELECT name FROM evals WHERE eval_id = ?", [eval_id])
        found = rel.fetchall()
        if not found:
            raise UnknownEvalError(eval_id)
        self._log = store
        self.eval_id = eval_id
        self.name = found[0][0]

    def __repr__(self) -> str:
        return f"LoadedEval({self.name!r}, eval_id={self.eval_id!r})"
