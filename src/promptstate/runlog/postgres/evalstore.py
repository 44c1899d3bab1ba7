"""The evaluation tables' writes (``runlog/evalstore.py``) in Postgres' spelling.

Same ops, same keys, same meaning: a dataset version is written once with its rows,
``evals`` / ``eval_runs`` / ``scores`` rows are upserted by their primary key, so a
batch sent again after a lost connection rewrites the same rows and duplicates none.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from promptstate.runlog.evalstore import EVAL_RUN_COLUMNS, SCORE_COLUMNS, columns_of

__all__ = ["write_extra_pg"]

_EVAL_COLUMNS = (
    "eval_id",
    "name",
    "dataset_id",
    "dataset_version",
    "config",
    "session_id",
    "created_at",
)


def _upsert(table: str, columns: Sequence[str], key: Sequence[str], json_cols: set[str]) -> str:
    marks = ", ".join("%s::jsonb" if c in json_cols else "%s" for c in columns)
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}"
    )


_UPSERT_EVAL = _upsert("evals", _EVAL_COLUMNS, ("eval_id",), {"config"})
_UPSERT_EVAL_RUN = _upsert("eval_runs", EVAL_RUN_COLUMNS, ("eval_id", "cell"), set())
_UPSERT_SCORE = _upsert("scores", SCORE_COLUMNS, ("score_id",), set())
_INSERT_DATASET = (
    "INSERT INTO datasets (dataset_id, version, name, n_rows, columns, variables, metadata, "
    "expected_column, created_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb, %s::jsonb, "
    "%s, %s) ON CONFLICT (dataset_id, version) DO NOTHING"
)
_INSERT_ROW = (
    "INSERT INTO dataset_rows (dataset_id, version, row_id, position, data) "
    "VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING"
)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_extra_pg(cur: Any, extra: Mapping[str, Mapping[Any, Any]]) -> None:
    """Write the evaluation ops of one batch (the caller holds the open transaction)."""
    for (dataset_id, version), (meta, rows) in extra.get("dataset", {}).items():
        cur.execute(
            _INSERT_DATASET,
            [
                dataset_id,
                version,
                meta["name"],
                len(rows),
                _dump(meta["columns"]),
                _dump(meta["variables"]),
                _dump(meta["metadata"]),
                meta["expected_column"],
                meta["created_at"],
            ],
        )
        if cur.rowcount == 1 and rows:  # a version already stored has its rows
            cur.executemany(
                _INSERT_ROW,
                [[dataset_id, version, r["row_id"], r["position"], _dump(r["data"])] for r in rows],
            )
    evals = [
        [_dump(row[c]) if c == "config" else row[c] for c in _EVAL_COLUMNS]
        for row in extra.get("eval", {}).values()
    ]
    if evals:
        cur.executemany(_UPSERT_EVAL, evals)
    # each op's data: row dicts or one list per column (RunLog.write_scores / write_eval_runs)
    runs = _rows(extra.get("eval_runs", {}).values(), EVAL_RUN_COLUMNS)
    if runs:
        cur.executemany(_UPSERT_EVAL_RUN, runs)
    scores = _rows(extra.get("scores", {}).values(), SCORE_COLUMNS)
    if scores:
        cur.executemany(_UPSERT_SCORE, scores)


def _rows(parts: Any, columns: Sequence[str]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for part in parts:
        batch = columns_of(part, columns)
        out.extend(list(r) for r in zip(*(batch.columns[c] for c in columns), strict=True))
    return out
