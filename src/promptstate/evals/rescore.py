"""Scoring logged runs again without calling any model, and human labels."""

from __future__ import annotations

import array
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from promptstate.engine.gcpause import paused_gc
from promptstate.engine.ports import Runtime
from promptstate.errors import UnknownRunError, VariableError
from promptstate.evals.dataset import DatasetRow
from promptstate.evals.evaluate import _check_scorers, scores_to_rows
from promptstate.evals.results import EvalStore, EvalView
from promptstate.evals.scoring import RunBatch, Score, ScoreContext, Scorer
from promptstate.models.redact import redact
from promptstate.models.run import RunResult, make_result, utc
from promptstate.models.values import ChatMessage
from promptstate.runlog.evalstore import SCORE_COLUMNS, ArrowBatch, score_schema
from promptstate.runlog.queries import arrow_of

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
# the ids go in as one JSON text: binding a list of 10,000 strings costs more than the query
_BY_IDS = (
    f"SELECT {_RUN_SELECT} FROM runs r "
    "WHERE r.run_id IN (SELECT unnest(from_json(?, '[\"VARCHAR\"]')))"
)


_RUN_FIELDS = tuple(f.name for f in fields(RunResult) if "sql" in f.metadata)


def _run_result(kw: dict[str, Any]) -> RunResult:
    """A RunResult from every one of its columns (the select list gives each, converted)."""
    kw["exception"] = None
    return make_result(kw)


def _json_column(texts: list[str | None]) -> list[Any]:
    # one json.loads for the whole column instead of one per run
    return list(json.loads("[" + ",".join("null" if t is None else t for t in texts) + "]"))


def _variables(v: Any) -> dict[str, tuple[str, str]]:
    return {n: (x["value"], x["source"]) for n, x in (v or {}).items()}


def _messages(v: Any) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(m["role"], m["content"]) for m in v or ())


_JSON_FIELDS: dict[str, Any] = {
    "variables": _variables,
    "messages": _messages,
    "settings": lambda v: dict(v or {}),
}


class _Runs(RunBatch):
    """The fetched runs: one Arrow table, its columns turned into lists on first use."""

    def __init__(self, table: Any) -> None:
        super().__init__(int(table.num_rows), self._convert, self._run, self._row)
        self.table = table
        self._with_rows = "_row_data" in table.column_names
        self._runs: dict[int, RunResult] = {}
        self._rows: dict[int, DatasetRow] = {}

    def _convert(self, name: str) -> list[Any]:
        values = self.table.column(name).to_pylist()
        conv = _JSON_FIELDS.get(name)
        return values if conv is None else [conv(v) for v in _json_column(values)]

    def _run(self, k: int) -> RunResult:
        run = self._runs.get(k)
        if run is None:
            run = self._runs[k] = _run_result({c: self.column(c)[k] for c in _RUN_FIELDS})
        return run

    def _row(self, k: int) -> DatasetRow:
        row = self._rows.get(k)
        if row is None:
            data = self.column("_row_data")[k] if self._with_rows else None
            if data:
                d = json.loads(data)
                row = DatasetRow(
                    self.column("_row_id")[k],
                    self.column("_position")[k],
                    d["variables"],
                    d["expected"],
                    d["metadata"],
                )
            else:  # a run outside any eval: its variables as sent, nothing expected
                run_id, variables = self.column("run_id")[k], self.column("variables")[k]
                row = DatasetRow(run_id, k, {n: v for n, (v, _s) in variables.items()})
            self._rows[k] = row
        return row


def _fetch(store: EvalStore, source: Any) -> tuple[str | None, _Runs]:
    if isinstance(source, EvalView):
        rel = store.sql(_EVAL_RUNS, [source.eval_id])
        eval_id: str | None = source.eval_id
    elif isinstance(source, str):
        picked = store.sql(source, read_only=True)
        cols = list(picked.columns)
        if "run_id" not in cols:
            raise VariableError("the runs query must return a run_id column")
        # only the run_id column leaves DuckDB (the query may return every column)
        alone = sum(c.lower() == "run_id" for c in cols) == 1  # else a name is ambiguous
        only = picked.select('"run_id"') if alone else picked
        picked_ids = arrow_of(only).column(cols.index("run_id") if only is picked else 0)
        ids = list(dict.fromkeys(picked_ids.to_pylist()))
        rel = store.sql(_BY_IDS, [json.dumps(ids)])
        eval_id = None
    else:
        raise VariableError("score() takes an Eval or a SQL query returning run_id")
    return eval_id, _Runs(arrow_of(rel))


def _score_ids(n: int) -> Any:
    """``n`` unique score ids: one random prefix, then 0, 1, 2, ... (built by Arrow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ints = pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(array.array("q", range(n)))])
    return pc.binary_join_element_wise(uuid.uuid4().hex[:20], ints.cast(pa.string()), "")


def _score_table(
    runs: _Runs,
    scorers: list[Scorer],
    scores: list[list[Score]],
    eval_id: str | None,
    session_id: str,
) -> Any:
    """The ``scores`` rows as one Arrow table, scorer after scorer, all runs each."""
    import pyarrow as pa

    schema = score_schema()
    n, total = len(runs), len(runs) * len(scorers)
    if not total:
        return schema.empty_table()
    chunks: dict[str, list[Any]] = {c: [] for c in SCORE_COLUMNS}
    run_ids = runs.table.column("run_id").combine_chunks()
    for s, got in zip(scorers, scores, strict=True):
        chunks["run_id"].append(run_ids)
        chunks["scorer"].append(pa.repeat(pa.scalar(s.name, pa.string()), n))
        chunks["scorer_version"].append(pa.repeat(pa.scalar(s.version, pa.string()), n))
        chunks["source"].append(pa.repeat(pa.scalar(s.source, pa.string()), n))
        chunks["value"].append(pa.array([sc.value for sc in got], pa.float64()))
        chunks["passed"].append(pa.array([sc.passed for sc in got], pa.bool_()))
        reasons = [None if sc.reason is None else redact(sc.reason) for sc in got]
        chunks["reason"].append(pa.array(reasons, pa.string()))
        chunks["judge_run_id"].append(pa.array([sc.judge_run_id for sc in got], pa.string()))
        chunks["errored"].append(pa.array([sc.errored for sc in got], pa.bool_()))
    columns = {c: pa.chunked_array(v, schema.field(c).type) for c, v in chunks.items() if v}
    columns["score_id"] = _score_ids(total)
    for name, value in (("eval_id", eval_id), ("session_id", session_id)):
        columns[name] = pa.repeat(pa.scalar(value, pa.string()), total)
    stamp = pa.scalar(utc(time.time()), pa.timestamp("us"))
    columns["created_at"] = pa.repeat(stamp, total)
    return pa.table([columns[c] for c in SCORE_COLUMNS], schema=schema)


async def rescore(rt: Runtime, store: EvalStore, source: Any, scorers: Any) -> str | None:
    """Score an eval's runs (or a query's runs) again; returns the eval id written to.

    No model is called (LLM judges excepted: they are models). Scores land in
    ``scores`` with the eval's id, so the eval's views show the newest score per scorer.
    All of them are written in one transaction, once every run is scored.
    """
    checked = _check_scorers(rt, scorers)
    with paused_gc():
        eval_id, runs = _fetch(store, source)
    n = len(runs)
    status = runs.column("status")
    ok = [k for k in range(n) if status[k] == "success"]
    failed: dict[int, Score] = {}  # a run that did not succeed fails every scorer
    if len(ok) < n:
        errors = runs.column("error")
        for k in range(n):
            if status[k] != "success":
                why = f"run ended {status[k]}: {errors[k] or ''}".strip()
                failed[k] = Score(0.0, False, redact(why))
    # with an async scorer every scorer without a batch check is awaited run by run,
    # exactly as score_rows does for an eval's cell
    sync = all(not s.is_async for s in checked)
    got: dict[str, list[Score]] = {}
    with paused_gc():  # nothing here suspends, so nothing else runs while the GC is paused
        for s in checked:
            if not s.is_async and (sync or s.batch is not None):
                got[s.name] = s.score_many(runs, ok)
    slow = [s for s in checked if s.name not in got]
    if slow:
        ctx = ScoreContext(rt, None)
        for s in slow:
            got[s.name] = []
        for k in ok:
            run, row = runs.run(k), runs.row(k)
            for s in slow:
                got[s.name].append(await s.score(run, row, ctx))
    with paused_gc():
        scores = []
        for s in checked:
            if not failed:
                scores.append(got[s.name])
                continue
            each = iter(got[s.name])
            scores.append([failed[k] if k in failed else next(each) for k in range(n)])
        table = _score_table(runs, checked, scores, eval_id, rt.session_id)
    if table.num_rows:
        store.write_scores(ArrowBatch(table)).result()
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
