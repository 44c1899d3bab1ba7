"""LLM judges: a rubric (or a pairwise "which is better") graded by a model.

A judge is an ordinary prompt run through the engine (``begin_send`` + ``execute``), so
its run is logged in ``runs`` like any other and each score links to it by
``judge_run_id``. Its reply must carry a verdict: a JSON object
``{"score": 0..1, "pass": true|false, "reason": "..."}`` (the last one in the reply
wins), or a line ``SCORE: <0..1>``, or a reply starting with ``PASS`` / ``FAIL``. A
reply with none of them gives an error score naming the cause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from promptstate.core.actions import InstanceClosed, PromptFetchFulfilled
from promptstate.core.state import prompt_key
from promptstate.engine.execute import execute
from promptstate.engine.ports import Runtime
from promptstate.engine.prompts import start_instance
from promptstate.engine.send import begin_send
from promptstate.errors import ScorerError
from promptstate.evals.dataset import DatasetRow
from promptstate.evals.scoring import Score, ScoreContext, Scorer, error_score
from promptstate.models.prompt import Message, Prompt, system, user
from promptstate.models.run import RunResult

__all__ = [
    "JudgeParseError",
    "PairwiseJudge",
    "judge_pairwise",
    "llm_rubric",
    "parse_verdict",
    "run_judge",
]

JUDGE_SYSTEM = (
    "You are a strict evaluator. Grade the OUTPUT against the RUBRIC. Reply with one JSON "
    'object and nothing else: {"score": <a number from 0 to 1>, "pass": <true or false>, '
    '"reason": "<one sentence>"}'
)
JUDGE_USER = (
    "RUBRIC:\n{{ rubric }}\n\nINPUT:\n{{ input }}\n\nEXPECTED (may be empty):\n{{ expected }}"
    "\n\nOUTPUT:\n{{ output }}"
)
PAIRWISE_SYSTEM = (
    "You compare two outputs for the same input against a RUBRIC. Reply with one JSON "
    'object and nothing else: {"winner": "A" or "B" or "tie", "reason": "<one sentence>"}'
)
PAIRWISE_USER = (
    "RUBRIC:\n{{ rubric }}\n\nINPUT:\n{{ input }}\n\nOUTPUT A:\n{{ a }}\n\nOUTPUT B:\n{{ b }}"
)


class JudgeParseError(ScorerError):
    """A judge's reply carries no verdict that can be read."""


def _objects(text: str) -> list[dict[str, Any]]:
    """Every JSON object embedded in ``text``, in order."""
    dec = json.JSONDecoder()
    out = []
    for m in re.finditer(r"\{", text):
        try:
            obj, _end = dec.raw_decode(text, m.start())
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def _as_bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in ("pass", "yes", "true", "fail", "no", "false"):
        return v.strip().lower() in ("pass", "yes", "true")
    return None


def parse_verdict(text: str, threshold: float = 0.5) -> Score:
    """Read a judge's reply into a :class:`Score` (raises :class:`JudgeParseError`)."""
    for obj in reversed(_objects(text)):
        keys = {k.lower(): v for k, v in obj.items()}
        raw_score = keys.get("score")
        passed = _as_bool(keys.get("pass", keys.get("passed", keys.get("verdict"))))
        if raw_score is None and passed is None:
            continue
        value: float | None = None
        if raw_score is not None:
            if isinstance(raw_score, bool) or not isinstance(raw_score, int | float | str):
                raise JudgeParseError(f"judge score {raw_score!r} is not a number")
            try:
                value = float(raw_score)
            except ValueError:
                raise JudgeParseError(f"judge score {raw_score!r} is not a number") from None
            if not 0.0 <= value <= 1.0:
                raise JudgeParseError(f"judge score {value:g} is outside 0..1")
        if value is None:
            value = 1.0 if passed else 0.0
        if passed is None:
            passed = value >= threshold
        reason = keys.get("reason")
        return Score(value, passed, None if reason is None else str(reason))
    m = re.findall(r"(?im)^\s*score\s*[:=]\s*([-+]?\d*\.?\d+)", text)
    if m:
        value = float(m[-1])
        if not 0.0 <= value <= 1.0:
            raise JudgeParseError(f"judge score {value:g} is outside 0..1")
        return Score(value, value >= threshold, text.strip()[:500])
    head = re.match(r"\s*\W*(PASS|FAIL)\b", text, re.I)
    if head:
        ok = head.group(1).upper() == "PASS"
        return Score(1.0 if ok else 0.0, ok, text.strip()[:500])
    shown = text.strip()[:200] or "(empty)"
    raise JudgeParseError(
        f"judge reply has no verdict (no JSON score/pass, SCORE: or PASS/FAIL): {shown!r}"
    )


def _cache_prompt(rt: Runtime, prompt: Prompt) -> None:
    """Put the judge prompt in the store's cache under ``id@version`` (never as latest)."""
    if prompt_key(prompt.id, prompt.version) not in rt.store.get_state().prompts:
        rt.store.dispatch(
            PromptFetchFulfilled(
                prompt=prompt.to_dict(),
                source="judge",
                at=rt.clock(),
                request_id=rt.new_id(),
                latest=False,
            )
        )


async def run_judge(
    rt: Runtime, prompt: Prompt, values: dict[str, str], model: str | None, cache: bool | None
) -> RunResult:
    """Send the judge prompt once through the engine (a tracked, logged run)."""
    _cache_prompt(rt, prompt)
    iid = start_instance(rt, prompt.id, values, model=model, version=prompt.version)
    try:
        prepared = begin_send(rt, iid, None, model=model, cache=cache)
        return await execute(rt, prepared)
    finally:
        rt.store.dispatch(InstanceClosed(instance_id=iid))


def _input_text(row: DatasetRow | None, run: RunResult) -> str:
    if row is not None and row.variables:
        return "\n".join(f"{k}: {v}" for k, v in row.variables.items())
    return "\n".join(f"{k}: {v}" for k, (v, _s) in run.variables.items())


def _check_messages(messages: Sequence[Message] | None, default: list[Message]) -> list[Message]:
    if messages is None:
        return default
    out = list(messages)
    if not out or not all(isinstance(m, Message) for m in out):
        raise ScorerError("messages= takes a list of ps.system/ps.user/ps.assistant messages")
    return out


class _Judge(Scorer):
    source = "judge"

    def __init__(self, name: str, prompt: Prompt, model: str | None, threshold: float) -> None:
        self.prompt = prompt
        self.model = model

        def judge(run: RunResult, row: DatasetRow) -> Any:  # pragma: no cover - not called
            raise NotImplementedError

        super().__init__(
            judge,
            name=name,
            params={"prompt": prompt.to_dict(), "model": model},
            threshold=threshold,
        )
        self.is_async = True

    def check(self, rt: Any) -> None:
        if self.model is not None:
            rt.providers.resolve(self.model)


class _Rubric(_Judge):
    async def score(self, run: RunResult, row: DatasetRow, ctx: ScoreContext | None) -> Score:
        if ctx is None:
            return error_score(ScorerError("an LLM judge needs the session's runtime"))
        values = {
            **row.variables,  # a custom judge template may use the row's variables too
            "rubric": self.params["rubric"],
            "input": _input_text(row, run),
            "expected": "" if row.expected is None else str(row.expected),
            "output": run.response,
        }
        try:
            jr = await run_judge(ctx.rt, self.prompt, values, self.model, ctx.cache)
        except Exception as exc:
            return error_score(exc)
        if jr.status != "success":
            return Score(None, False, f"judge run {jr.status}: {jr.error}", jr.run_id, True)
        try:
            s = parse_verdict(jr.response, self.threshold or 0.5)
        except JudgeParseError as exc:
            return error_score(exc, jr.run_id)
        return Score(s.value, s.passed, s.reason, jr.run_id)


def llm_rubric(
    rubric: str,
    model: str | None = None,
    *,
    name: str = "llm_rubric",
    threshold: float = 0.5,
    messages: Sequence[Message] | None = None,
) -> Scorer:
    """An LLM judge grading each output against ``rubric``.

    Parameters
    ----------
    rubric : str
        What a good output is ("answers in one sentence and names the capital").
    model : str, optional
        The judge's model string (default: echo, the offline stand-in).
    threshold : float
        A judge score >= threshold passes when the judge gives no explicit ``pass``.
    messages : list of Message, optional
        Your own judge prompt; it may use ``{{ rubric }}``, ``{{ input }}``,
        ``{{ expected }}`` and ``{{ output }}``.
    """
    if not isinstance(rubric, str) or not rubric.strip():
        raise ScorerError("llm_rubric() needs a non-empty rubric")
    msgs = _check_messages(messages, [system(JUDGE_SYSTEM), user(JUDGE_USER)])
    prompt = Prompt(
        id=f"judge.{name}",
        messages=msgs,
        variables={"rubric": "", "input": "", "expected": "", "output": ""},
        model=model or "echo",
    )
    j = _Rubric(name, prompt, model, threshold)
    j.params["rubric"] = rubric
    j.version = j.version + ":" + _short(rubric)
    return j


def _short(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:6]


class PairwiseJudge(_Judge):
    """A judge asked which of two outputs is better (see :func:`judge_pairwise`)."""

    async def compare(
        self, a: RunResult, b: RunResult, row: DatasetRow | None, ctx: ScoreContext
    ) -> Score:
        """Score for run ``b`` against ``a``: 1 b better, 0 a better, 0.5 a tie."""
        values = {
            "rubric": self.params["rubric"],
            "input": _input_text(row, b),
            "a": a.response,
            "b": b.response,
        }
        try:
            jr = await run_judge(ctx.rt, self.prompt, values, self.model, ctx.cache)
        except Exception as exc:
            return error_score(exc)
        if jr.status != "success":
            return Score(None, False, f"judge run {jr.status}: {jr.error}", jr.run_id, True)
        for obj in reversed(_objects(jr.response)):
            w = str(obj.get("winner", "")).strip().lower()
            if w in ("a", "b", "tie"):
                value = {"a": 0.0, "b": 1.0, "tie": 0.5}[w]
                return Score(value, value >= 0.5, obj.get("reason"), jr.run_id)
        why = JudgeParseError(
            f"pairwise judge reply has no winner A/B/tie: {jr.response.strip()[:200]!r}"
        )
        return error_score(why, jr.run_id)

    async def score(self, run: RunResult, row: DatasetRow, ctx: ScoreContext | None) -> Score:
        return error_score(ScorerError("a pairwise judge compares two evals: use compare()"))


def judge_pairwise(
    rubric: str,
    model: str | None = None,
    *,
    name: str = "pairwise",
    messages: Sequence[Message] | None = None,
) -> PairwiseJudge:
    """An LLM judge choosing the better of two outputs for the same row.

    Used by ``session.judge_pairwise(eval_a, eval_b, judge)``; its template may use
    ``{{ rubric }}``, ``{{ input }}``, ``{{ a }}`` and ``{{ b }}``.
    """
    if not isinstance(rubric, str) or not rubric.strip():
        raise ScorerError("judge_pairwise() needs a non-empty rubric")
    msgs = _check_messages(messages, [system(PAIRWISE_SYSTEM), user(PAIRWISE_USER)])
    prompt = Prompt(
        id=f"judge.{name}",
        messages=msgs,
        variables={"rubric": "", "input": "", "a": "", "b": ""},
        model=model or "echo",
    )
    j = PairwiseJudge(name, prompt, model, 0.5)
    j.params["rubric"] = rubric
    j.version = j.version + ":" + _short(rubric)
    return j
