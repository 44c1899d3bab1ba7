"""Built-in scorers (``ps.scorers``), plus :class:`Score`, :func:`scorer` and the LLM judges.

Each factory returns a :class:`Scorer` checking ``run.response`` (or the run's latency,
cost, tokens). A value the check compares with defaults to the row's ``expected``::

    ps.scorers.equals()                  # response == expected (stripped)
    ps.scorers.contains("Paris")         # or contains() for expected
    ps.scorers.regex(r"^\\d+$")
    ps.scorers.json_schema({"type": "object", "required": ["name"]})
    ps.scorers.similarity(threshold=0.8) # difflib ratio against expected
    ps.scorers.latency(max_ms=2000)
    ps.scorers.llm_rubric("Is the answer polite?", model="openai:gpt-4o-mini")
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from promptstate.errors import ScorerError
from promptstate.evals.dataset import DatasetRow
from promptstate.evals.judge import judge_pairwise, llm_rubric, parse_verdict
from promptstate.evals.scoring import (
    BatchCheck,
    RunBatch,
    Score,
    Scorer,
    as_scorer,
    columnar,
    scorer,
)
from promptstate.models.run import RunResult

__all__ = [
    "BUILTINS",
    "Score",
    "Scorer",
    "as_scorer",
    "contains",
    "cost",
    "equals",
    "icontains",
    "is_json",
    "json_path_equals",
    "json_schema",
    "judge_pairwise",
    "latency",
    "length",
    "llm_rubric",
    "parse_verdict",
    "regex",
    "scorer",
    "similarity",
    "starts_with",
    "tokens",
]

_UNSET: Any = object()


def _want(given: Any, row: DatasetRow, what: str) -> Any:
    if given is not _UNSET:
        return given
    if row.expected is None:
        raise ScorerError(
            f"no expected value for row {row.row_id}: give {what}= or an expected column"
        )
    return row.expected


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _params(**kw: Any) -> dict[str, Any]:
    return {k: ("<expected>" if v is _UNSET else v) for k, v in kw.items()}


# -- batch checks: the same checks over many runs' columns (re-scoring; see score_many).
# Each gives, run for run, exactly what its scorer's ``check`` returns; the per-run check
# stays the definition (its source is the scorer's version) and the fallback.


def _wants(given: Any, runs: RunBatch, idx: Sequence[int], what: str) -> list[str]:
    """The compared text of each run: ``given``, or each run's row's ``expected``."""
    if given is not _UNSET:
        return [_text(given)] * len(idx)
    return [_text(_want(given, runs.row(k), what)) for k in idx]


def _with(scorer: Scorer, batch: BatchCheck) -> Scorer:
    scorer.batch = batch
    return scorer


def equals(value: Any = _UNSET, *, strip: bool = True, ignore_case: bool = False) -> Scorer:
    """Passes when the response equals ``value`` (default: the row's ``expected``)."""

    def check(run: RunResult, row: DatasetRow) -> bool:
        got, want = run.response, _text(_want(value, row, "value"))
        if strip:
            got, want = got.strip(), want.strip()
        if ignore_case:
            got, want = got.casefold(), want.casefold()
        return got == want

    def many(runs: RunBatch, idx: Sequence[int]) -> list[bool]:
        resp = runs.column("response")
        got, want = [resp[k] for k in idx], _wants(value, runs, idx, "value")
        if strip:
            got, want = [g.strip() for g in got], [w.strip() for w in want]
        if ignore_case:
            got, want = [g.casefold() for g in got], [w.casefold() for w in want]
        return [g == w for g, w in zip(got, want, strict=True)]

    return _with(
        Scorer(check, name="equals", params=_params(value=value, strip=strip, ic=ignore_case)),
        many,
    )


def contains(text: Any = _UNSET, *, ignore_case: bool = False) -> Scorer:
    """Passes when the response contains ``text`` (default: the row's ``expected``)."""

    def check(run: RunResult, row: DatasetRow) -> bool:
        want = _text(_want(text, row, "text"))
        if ignore_case:
            return want.casefold() in run.response.casefold()
        return want in run.response

    def many(runs: RunBatch, idx: Sequence[int]) -> list[bool]:
        resp = runs.column("response")
        if text is not _UNSET and not ignore_case:  # the common case, kept cheap
            want = _text(text)
            return [want in resp[k] for k in idx]
        wants = _wants(text, runs, idx, "text")
        if ignore_case:
            return [w.casefold() in resp[k].casefold() for w, k in zip(wants, idx, strict=True)]
        return [w in resp[k] for w, k in zip(wants, idx, strict=True)]

    name = "icontains" if ignore_case else "contains"
    return _with(Scorer(check, name=name, params=_params(text=text, ignore_case=ignore_case)), many)


def icontains(text: Any = _UNSET) -> Scorer:
    """:func:`contains`, ignoring case."""
    return contains(text, ignore_case=True)


def starts_with(prefix: Any = _UNSET, *, strip: bool = True) -> Scorer:
    """Passes when the response starts with ``prefix`` (default: ``expected``)."""

    def check(run: RunResult, row: DatasetRow) -> bool:
        got = run.response.lstrip() if strip else run.response
        return got.startswith(_text(_want(prefix, row, "prefix")))

    def many(runs: RunBatch, idx: Sequence[int]) -> list[bool]:
        resp = runs.column("response")
        got = [resp[k].lstrip() if strip else resp[k] for k in idx]
        wants = _wants(prefix, runs, idx, "prefix")
        return [g.startswith(w) for g, w in zip(got, wants, strict=True)]

    return _with(
        Scorer(check, name="starts_with", params=_params(prefix=prefix, strip=strip)), many
    )


def regex(pattern: str, *, flags: int = 0, full: bool = False) -> Scorer:
    """Passes when ``pattern`` matches the response (``re.search``; ``full``: fullmatch)."""
    try:
        compiled = re.compile(pattern, flags)
    except (re.error, TypeError) as exc:
        raise ScorerError(f"regex({pattern!r}): not a valid pattern: {exc}") from None

    def check(run: RunResult, row: DatasetRow) -> bool:
        found = compiled.fullmatch(run.response) if full else compiled.search(run.response)
        return found is not None

    def many(runs: RunBatch, idx: Sequence[int]) -> list[bool]:
        resp = runs.column("response")
        match = compiled.fullmatch if full else compiled.search
        return [match(resp[k]) is not None for k in idx]

    return _with(
        Scorer(check, name="regex", params={"pattern": pattern, "flags": flags, "full": full}),
        many,
    )


def _load_json(text: str) -> Any:
    body = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)
    return json.loads(fence.group(1) if fence else body)


def is_json() -> Scorer:
    """Passes when the response is JSON (a fenced ```json block counts)."""

    def check(run: RunResult, row: DatasetRow) -> Score:
        try:
            _load_json(run.response)
        except ValueError as exc:
            return Score(0.0, False, f"not JSON: {exc}")
        return Score(1.0, True)

    return _with(Scorer(check, name="is_json"), columnar(check, ("response",), False))


def json_schema(schema: Mapping[str, Any]) -> Scorer:
    """Passes when the response is JSON valid against ``schema`` (the jsonschema package)."""
    import jsonschema

    try:
        validator_cls = jsonschema.validators.validator_for(schema)
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ScorerError(f"json_schema(): not a valid JSON Schema: {exc.message}") from None
    validator = validator_cls(schema)

    def check(run: RunResult, row: DatasetRow) -> Score:
        try:
            doc = _load_json(run.response)
        except ValueError as exc:
            return Score(0.0, False, f"not JSON: {exc}")
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            where = "/".join(map(str, errors[0].path)) or "(root)"
            return Score(0.0, False, f"{where}: {errors[0].message}")
        return Score(1.0, True)

    return _with(
        Scorer(check, name="json_schema", params={"schema": dict(schema)}),
        columnar(check, ("response",), False),
    )


def _path(doc: Any, path: str) -> Any:
    parts = [p for p in re.split(r"\.|\[(\d+)\]", path.removeprefix("$")) if p]
    for p in parts:
        if isinstance(doc, list) and p.isdigit():
            doc = doc[int(p)]
        elif isinstance(doc, dict):
            doc = doc[p]
        else:
            raise KeyError(p)
    return doc


def json_path_equals(path: str, value: Any = _UNSET) -> Scorer:
    """Passes when the JSON response's value at ``path`` (``$.a.b[0]``) equals ``value``.

    ``value`` defaults to the row's ``expected`` (a JSON text is parsed first).
    """

    def check(run: RunResult, row: DatasetRow) -> Score:
        want = _want(value, row, "value")
        if value is _UNSET and isinstance(want, str):
            with contextlib.suppress(ValueError):  # else a plain string expected value
                want = json.loads(want)
        try:
            got = _path(_load_json(run.response), path)
        except ValueError as exc:
            return Score(0.0, False, f"not JSON: {exc}")
        except (KeyError, IndexError) as exc:
            return Score(0.0, False, f"{path}: no such key {exc}")
        ok = got == want
        return Score(1.0 if ok else 0.0, ok, None if ok else f"{path} is {got!r}, not {want!r}")

    return _with(
        Scorer(check, name="json_path_equals", params=_params(path=path, value=value)),
        columnar(check, ("response",), value is _UNSET),
    )


def similarity(expected: Any = _UNSET, *, threshold: float = 0.8) -> Scorer:
    """``difflib.SequenceMatcher`` ratio of the response to ``expected``; passes >= threshold."""

    def check(run: RunResult, row: DatasetRow) -> float:
        want = _text(_want(expected, row, "expected"))
        return difflib.SequenceMatcher(None, run.response.strip(), want.strip()).ratio()

    return _with(
        Scorer(check, name="similarity", params=_params(expected=expected), threshold=threshold),
        columnar(check, ("response",), expected is _UNSET),
    )


def length(min: int | None = None, max: int | None = None) -> Scorer:
    """Passes when ``min <= len(response) <= max`` (characters)."""
    if min is None and max is None:
        raise ScorerError("length() needs min= or max=")

    def check(run: RunResult, row: DatasetRow) -> bool:
        n = len(run.response)
        return (min is None or n >= min) and (max is None or n <= max)

    def many(runs: RunBatch, idx: Sequence[int]) -> list[bool]:
        resp = runs.column("response")
        lengths = [len(resp[k]) for k in idx]
        return [(min is None or n >= min) and (max is None or n <= max) for n in lengths]

    return _with(Scorer(check, name="length", params={"min": min, "max": max}), many)


def _bound(name: str, got: float | None, limit: float) -> Score:
    if got is None:
        return Score(None, False, f"{name} unknown for this run", errored=True)
    ok = got <= limit
    return Score(float(got), ok, None if ok else f"{name} {got:g} > {limit:g}")


def _new_score(value: float | None, passed: bool, reason: str | None, errored: bool) -> Score:
    # the Score the frozen dataclass __init__ builds, at about half its cost
    s = object.__new__(Score)
    d = s.__dict__
    d["value"], d["passed"], d["reason"] = value, passed, reason
    d["judge_run_id"], d["errored"] = None, errored
    return s


def _bounds(name: str, column: list[Any], idx: Sequence[int], limit: float) -> list[Score]:
    """:func:`_bound` of each run's value: the same scores, built faster."""
    unknown = _bound(name, None, limit)  # frozen: one instance serves every such run
    out = []
    for k in idx:
        got = column[k]
        if got is None:
            out.append(unknown)
            continue
        ok = got <= limit
        out.append(_new_score(float(got), ok, None if ok else f"{name} {got:g} > {limit:g}", False))
    return out


def latency(max_ms: float) -> Scorer:
    """Passes when the run's ``latency_ms`` <= ``max_ms``; the value is the latency."""

    def check(run: RunResult, row: DatasetRow) -> Score:
        return _bound("latency_ms", run.latency_ms, max_ms)

    def many(runs: RunBatch, idx: Sequence[int]) -> list[Score]:
        return _bounds("latency_ms", runs.column("latency_ms"), idx, max_ms)

    return _with(Scorer(check, name="latency", params={"max_ms": max_ms}), many)


def cost(max_usd: float) -> Scorer:
    """Passes when the run's ``cost_usd`` <= ``max_usd`` (needs ``Session(prices=...)``)."""

    def check(run: RunResult, row: DatasetRow) -> Score:
        return _bound("cost_usd", run.cost_usd, max_usd)

    def many(runs: RunBatch, idx: Sequence[int]) -> list[Score]:
        return _bounds("cost_usd", runs.column("cost_usd"), idx, max_usd)

    return _with(Scorer(check, name="cost", params={"max_usd": max_usd}), many)


def tokens(
    max_output: int | None = None, *, max_input: int | None = None, max_total: int | None = None
) -> Scorer:
    """Passes when the run's token counts are within the given bounds."""
    if max_output is None and max_input is None and max_total is None:
        raise ScorerError("tokens() needs max_output=, max_input= or max_total=")

    def check(run: RunResult, row: DatasetRow) -> Score:
        tin, tout = run.input_tokens, run.output_tokens
        total = None if tin is None or tout is None else tin + tout
        for label, got, limit in (
            ("output_tokens", tout, max_output),
            ("input_tokens", tin, max_input),
            ("total_tokens", total, max_total),
        ):
            if limit is not None:
                s = _bound(label, got, limit)
                if not s.passed:
                    return s
        return Score(float(tout or 0), True)

    return _with(
        Scorer(
            check, name="tokens", params={"out": max_output, "in": max_input, "total": max_total}
        ),
        columnar(check, ("input_tokens", "output_tokens"), False),
    )


# names an eval file may use (``scorers: [{contains: {text: ...}}]``)
BUILTINS: dict[str, Any] = {
    "equals": equals,
    "contains": contains,
    "icontains": icontains,
    "starts_with": starts_with,
    "regex": regex,
    "is_json": is_json,
    "json_schema": json_schema,
    "json_path_equals": json_path_equals,
    "similarity": similarity,
    "length": length,
    "latency": latency,
    "cost": cost,
    "tokens": tokens,
    "llm_rubric": llm_rubric,
}
