"""Scoring logged runs again without calling any model, and human labels."""

from __future__ import annotations

import contextlib
import gc
import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any

from promptstate.engine.ports import Runtime
from promptstate.errors import UnknownRunError, VariableError
from promptstate.evals.dataset import DatasetRow
from promptstate.evals.evaluate import _check_scorers, score_rows, scores_to_rows
from promptstate.evals.results import EvalStore, EvalView
from promptstate.evals.scoring import ScoreContext
from promptstate.models.redact import redact
from promptstate.models.run import RunResult, utc
from promptstate.models.values import ChatMessage
from promptstate.runlog.evalstore import SCORE_COLUMNS

__all__ = [
    "handle_label_message",
    "label",
    "pairwise",
    "rescore",
]


def _select_list(prefix: str) -> str:
    """The ``runs`` columns as a :class:`RunResult` takes them: epoch seconds, defaults."""
    out = []
    for f in fields(RunResult):
        if "sql" not in f.metadata:
            continue
        col = f"{prefix}{f.name}"
        kind = str(f.metadata["sql"]).split()[0]
        if kind == "TIMESTAMP":
            col = f"epoch_us({col}) / 1000000.0"
        elif isinstance(f.default, bool):
            col = f"coalesce({col}, {str(f.default).lower()})"
        elif isinstance(f.default, int | str):
            col = f"coalesce({col}, {f.default!r})"  # '' or 0: plain SQL literals
        out.append(f"{col} AS {f.name}")
    return ", ".join(out)


_RUN_SELECT = _select_list("r.")
_EVAL_RUNS = (
    f"SELECT {_RUN_SELECT}, dr.data AS _row_data, er.row_id AS _row_id, "
    "er.position AS _position "
    "FROM eval_runs er JOIN evals e ON e.eval_id = er.eval_id JOIN runs r ON r.run_id = er.run_id "
    "LEFT JOIN dataset_rows dr ON dr.dataset_id = e.dataset_id "
    "AND dr.version = e.dataset_version AND dr.position = er.position "
    "WHERE er.eval_id = ? ORDER BY er.cell"
)
_BY_IDS = f"SELECT {_RUN_SELECT} FROM runs r WHERE r.run_id IN (SELECT unnest(?))"


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building many small objects that form no cycles.

    Building 10,000 runs and 40,000 scores otherwise triggers full collections that
    scan every live object again and again (over half the re-scoring time here).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


_FIELD_NAMES = frozenset(f.name for f in fields(RunResult))


def _run_result(kw: dict[str, Any]) -> RunResult:
    """A RunResult from every one of its fields, without the dataclass ``__init__``.

    ``kw`` holds every field (the select list gives every column, already converted),
    so this is the same object ``RunResult(**kw)`` builds, at a fraction of its cost
    (~1 us against 6-18 us on this machine, the largest part of re-scoring).
    """
    kw["exception"] = None
    assert kw.keys() == _FIELD_NAMES
    run = object.__new__(RunResult)
    run.__dict__.update(kw)
    return run


def _json_column(records: list[Any], i: int) -> list[Any]:
    # one json.loads for the whole column: 3 calls in all instead of 3 per run
    return list(json.loads("[" + ",".join("null" if r[i] is None else r[i] for r in records) + "]"))


def _fetch(store: EvalStore, source: Any) -> tuple[str | None, list[tuple[RunResult, DatasetRow]]]:
    if isinstance(source, EvalView):
        rel = store.sql(_EVAL_RUNS, [source.eval_id])
        eval_id: str | None = source.eval_id
    elif isinstance(source, str):
        picked = store.sql(source, read_only=True)
        cols = list(picked.columns)
        if "run_id" not in cols:
            raise VariableError("the runs query must return a run_id column")
        i = cols.index("run_id")
        ids = list(dict.fromkeys(r[i] for r in picked.fetchall()))
        rel = store.sql(_BY_IDS, [ids])
        eval_id = None
    else:
        raise VariableError("score() takes an Eval or a SQL query returning run_id")
    cols = list(rel.columns)
    records = rel.fetchall()
    run_cols = [c for c in cols if not c.startswith("_")]
    n_run = len(run_cols)
    vi, mi, si = cols.index("variables"), cols.index("messages"), cols.index("settings")
    variables, messages, settings = (_json_column(records, i) for i in (vi, mi, si))
    has_row = "_row_data" in cols
    out: list[tuple[RunResult, DatasetRow]] = []
    for k, values in enumerate(records):
        kw = dict(zip(run_cols, values[:n_run], strict=True))
        kw["variables"] = {n: (v["value"], v["source"]) for n, v in (variables[k] or {}).items()}
        kw["messages"] = tuple(ChatMessage(m["role"], m["content"]) for m in messages[k] or ())
        kw["settings"] = dict(settings[k] or {})
        run = _run_result(kw)
        data = values[cols.index("_row_data")] if has_row else None
        if data:
            d = json.loads(data)
            row = DatasetRow(
                values[n_run + 1], values[n_run + 2], d["variables"], d["expected"], d["metadata"]
            )
        else:  # a run outside any eval: its variables as sent, nothing expected
            row = DatasetRow(run.run_id, k, {n: v for n, (v, _s) in run.variables.items()})
        out.append((run, row))
    return eval_id, out


async def rescore(rt: Runtime, store: EvalStore, source: Any, scorers: Any) -> str | None:
    """Score an eval's runs (or a query's runs) again; returns the eval id written to.

    No model is called (LLM judges excepted: they are models). Scores land in
    ``scores`` with the eval's id, so the eval's views show the newest score per scorer.
    """
    checked = _check_scorers(rt, scorers)
    with _no_gc():
        eval_id, pairs = _fetch(store, source)
    ctx = ScoreContext(rt, None)
    # built column by column: 40,000 score dicts would cost more than the scoring
    cols: dict[str, list[Any]] = {c: [] for c in SCORE_COLUMNS}
    run_ids, names, versions, sources = (
        cols["run_id"],
        cols["scorer"],
        cols["scorer_version"],
        cols["source"],
    )
    values, passed, reasons, judges, errored = (
        cols["value"],
        cols["passed"],
        cols["reason"],
        cols["judge_run_id"],
        cols["errored"],
    )
    sync = all(not s.is_async for s in checked)  # the fast path: no awaiting per run
    # sync scorers never suspend: nothing else runs while the GC is paused
    with _no_gc() if sync else contextlib.nullcontext():
        for run, row in pairs:
            if sync and run.status == "success":
                scores = [(s, s.score_sync(run, row)) for s in checked]
            else:
                got = await score_rows(checked, run, row, ctx)
                scores = [(s, got[s.name]) for s in checked]
            for s, sc in scores:
                run_ids.append(run.run_id)
                names.append(s.name)
                versions.append(s.version)
                sources.append(s.source)
                values.append(sc.value)
                passed.append(sc.passed)
                reasons.append(None if sc.reason is None else redact(sc.reason))
                judges.append(sc.judge_run_id)
                errored.append(sc.errored)
    n = len(run_ids)
    prefix = uuid.uuid4().hex[:20]
    cols["score_id"] = [f"{prefix}{i:x}" for i in range(n)]
    cols["eval_id"] = [eval_id] * n
    cols["session_id"] = [rt.session_id] * n
    cols["created_at"] = [utc(time.time())] * n
    if n:
        store.write_scores(cols).result()
    return eval_id


def _thumb(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("up", "+1", 1, "1", "yes", "good"):
        return True
    if value in ("down", "-1", -1, 0, "0", "no", "bad"):
        return False
    raise VariableError(f"thumbs must be 'up'/'down' or True/False, not {value!r}")


def label(
    rt: Runtime,
    store: EvalStore,
    run_id: str,
    value: float | None = None,
    *,
    thumbs: Any = None,
    comment: str | None = None,
    name: str = "human",
    user: str | None = None,
) -> dict[str, Any]:
    """Store a human label of a run as a score with ``source = 'human'``; returns the row."""
    if not isinstance(run_id, str) or rt.reader.get_run(run_id) is None:
        raise UnknownRunError(str(run_id))
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise VariableError(f"label value must be a number, not {value!r}")
    if comment is not None and not isinstance(comment, str):
        raise VariableError("comment must be a string")
    if not isinstance(name, str) or not name.strip():
        raise VariableError("a label name must be a non-empty string")
    passed = None if thumbs is None else _thumb(thumbs)
    if value is None and passed is None and comment is None:
        raise VariableError("give a label: value=, thumbs= or comment=")
    score_value = float(value) if value is not None else None
    if score_value is None and passed is not None:
        score_value = 1.0 if passed else 0.0
    row = {
        "score_id": uuid.uuid4().hex,
        "run_id": run_id,
        "scorer": name,
        "scorer_version": user or rt.user_id or "human",
        "value": score_value,
        "passed": passed,
        "reason": None if comment is None else redact(comment),
        "source": "human",
        "judge_run_id": None,
        "eval_id": None,
        "errored": False,
        "session_id": rt.session_id,
        "created_at": utc(time.time()),
    }
    store.write_scores([row]).result()
    return row


def handle_label_message(rt: Runtime, store: EvalStore, msg: Mapping[str, Any]) -> dict[str, Any]:
    """A widget message ``{"run_id", "thumbs"|"value"|"comment", "name"?}`` -> a reply.

    Never raises for bad input: the reply is ``{"ok": True, "score_id": ...}`` or
    ``{"ok": False, "error": "..."}``, ready to send back to the front end.
    """
    try:
        if not isinstance(msg, Mapping):
            raise VariableError("a label message must be an object")
        unknown = set(msg) - {"type", "run_id", "value", "thumbs", "comment", "name", "user"}
        if unknown:
            raise VariableError(f"unknown label field(s): {', '.join(sorted(unknown))}")
        row = label(
            rt,
            store,
            msg.get("run_id"),  # type: ignore[arg-type]
            msg.get("value"),
            thumbs=msg.get("thumbs"),
            comment=msg.get("comment"),
            name=msg.get("name") or "human",
            user=msg.get("user"),
        )
    except Exception as exc:
        return {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}")}
    return {"ok": True, "score_id": row["score_id"], "run_id": row["run_id"]}


async def pairwise(rt: Runtime, store: EvalStore, a: EvalView, b: EvalView, judge: Any) -> Any:
    """Ask a pairwise judge, row by row, whether B's output beats A's.

    Each verdict is a score on B's run (1 B better, 0 A better, 0.5 tie, ``source =
    'judge'``, ``judge_run_id`` set) under B's eval id; returns ``b.rows()`` refreshed.
    """
    from promptstate.evals.judge import PairwiseJudge

    if not isinstance(judge, PairwiseJudge):
        raise VariableError("pairwise() takes a judge from ps.scorers.judge_pairwise()")
    judge.check(rt)
    rows_a = {r.row_id: r for r in a.rows()}
    ctx = ScoreContext(rt, None)
    out: list[dict[str, Any]] = []
    for rb in b.rows():
        ra = rows_a.get(rb.row_id)
        if ra is None or not ra.runs or not rb.runs:
            continue
        run_a, run_b = ra.runs[0], rb.runs[0]
        if run_a.run_id is None or run_b.run_id is None:
            continue
        got_a, got_b = rt.reader.get_run(run_a.run_id), rt.reader.get_run(run_b.run_id)
        if got_a is None or got_b is None:
            continue
        row = DatasetRow(rb.row_id, rb.position, rb.variables, rb.expected, rb.metadata)
        s = await judge.compare(got_a, got_b, row, ctx)
        out += scores_to_rows(
            run_b.run_id,
            {judge.name: s},
            {judge.name: judge},
            b.eval_id,
            rt.session_id,
            time.time(),
        )
    if out:
        store.write_scores(out).result()
    return b.rows()
