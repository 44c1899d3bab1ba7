"""Writes of the evaluation tables (``scores``, ``datasets``, ``evals``), inside a batch.

The :class:`~promptstate.runlog.writer.Writer` groups these ops with the runs of the same
batch and calls :func:`write_extra` inside that batch's one transaction, so a dataset and
its rows (or a score and the run it scores) are never half-written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "EVAL_RUN_COLUMNS",
    "EXTRA_KINDS",
    "SCORE_COLUMNS",
    "ArrowBatch",
    "ColumnBatch",
    "columns_of",
    "score_schema",
    "write_extra",
]

SCORE_COLUMNS: tuple[str, ...] = (
    "score_id",
    "run_id",
    "scorer",
    "scorer_version",
    "value",
    "passed",
    "reason",
    "source",
    "judge_run_id",
    "eval_id",
    "errored",
    "session_id",
    "created_at",
)
EVAL_RUN_COLUMNS = (
    "eval_id",
    "cell",
    "run_id",
    "row_id",
    "position",
    "prompt_id",
    "prompt_version",
    "model",
    "repetition",
    "status",
    "error",
)
# op kinds the writer hands to write_extra, in the order they are committed
EXTRA_KINDS: tuple[str, ...] = ("dataset", "eval", "eval_runs", "scores")


def score_schema() -> Any:
    """The Arrow schema of ``scores`` rows (:data:`SCORE_COLUMNS` in order)."""
    import pyarrow as pa

    types = {"value": pa.float64(), "passed": pa.bool_(), "errored": pa.bool_()}
    types["created_at"] = pa.timestamp("us")
    return pa.schema([(c, types.get(c, pa.string())) for c in SCORE_COLUMNS])


def _eval_run_schema() -> Any:
    import pyarrow as pa

    ints = {"cell": pa.int64(), "position": pa.int64(), "repetition": pa.int32()}
    return pa.schema([(c, ints.get(c, pa.string())) for c in EVAL_RUN_COLUMNS])


class ColumnBatch(Sequence[dict[str, Any]]):
    """Rows held as one list per column (cheap to build and to hand to Arrow).

    It is also a sequence of row dicts, so code that iterates rows (the Postgres port)
    reads it unchanged.
    """

    def __init__(self, columns: Mapping[str, list[Any]], names: Sequence[str]) -> None:
        self.columns: Mapping[str, list[Any]] = {c: list(columns[c]) for c in names}
        self._names = tuple(names)
        self._n = len(self.columns[names[0]]) if names else 0

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._n))]
        return {c: self.columns[c][i] for c in self._names}

    def arrow(self, schema: Any) -> Any:
        """The rows as an Arrow table of ``schema``."""
        import pyarrow as pa

        return pa.table({c: self.columns[c] for c in schema.names}, schema=schema)


class _ArrowColumns(Mapping[str, list[Any]]):
    """An Arrow table's columns as Python lists, each converted on first use."""

    def __init__(self, table: Any) -> None:
        self._table = table
        self._lists: dict[str, list[Any]] = {}

    def __getitem__(self, name: str) -> list[Any]:
        got = self._lists.get(name)
        if got is None:
            got = self._lists[name] = self._table.column(name).to_pylist()
        return got

    def __iter__(self) -> Any:
        return iter(self._table.column_names)

    def __len__(self) -> int:
        return int(self._table.num_columns)


class ArrowBatch(ColumnBatch):
    """Rows already held as an Arrow table (re-scoring builds its scores this way).

    DuckDB inserts the table as is; ``columns`` (what the Postgres port reads) converts
    a column to a Python list only when asked for it.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.columns = _ArrowColumns(table)
        self._names = tuple(table.column_names)
        self._n = int(table.num_rows)

    def arrow(self, schema: Any) -> Any:
        if self.table.schema.equals(schema):
            return self.table
        return self.table.select(schema.names).cast(schema)


def columns_of(rows: Any, columns: Sequence[str]) -> ColumnBatch:
    """Row dicts (or a mapping of column lists) as a :class:`ColumnBatch`."""
    if isinstance(rows, ColumnBatch):
        return rows
    if isinstance(rows, Mapping):
        return ColumnBatch(rows, columns)
    listed = list(rows)
    return ColumnBatch({c: [r[c] for r in listed] for c in columns}, columns)


def _bulk(con: Any, table: str, schema: Any, parts: Sequence[Any]) -> None:
    import pyarrow as pa

    columns = schema.names
    tables = [columns_of(p, columns).arrow(schema) for p in parts if len(p)]
    if not tables:
        return
    con.register("_ps_extra", tables[0] if len(tables) == 1 else pa.concat_tables(tables))
    try:
        names = ", ".join(columns)
        # a plain INSERT: a failed batch rolls back whole, so a retry never meets its rows
        con.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM _ps_extra")
    finally:
        con.unregister("_ps_extra")


def write_extra(con: Any, extra: Mapping[str, Mapping[Any, Any]]) -> None:
    """Write the evaluation ops of one batch (the caller holds the open transaction)."""
    for (dataset_id, version), (meta, rows) in extra.get("dataset", {}).items():
        exists = con.execute(
            "SELECT count(*) FROM datasets WHERE dataset_id = ? AND version = ?",
            [dataset_id, version],
        ).fetchone()[0]
        if exists:  # the same rows saved again are the same version: nothing to write
            continue
        con.execute(
            "INSERT INTO datasets (dataset_id, version, name, n_rows, columns, variables, "
            "metadata, expected_column, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                dataset_id,
                version,
                meta["name"],
                len(rows),
                json.dumps(meta["columns"], ensure_ascii=False),
                json.dumps(meta["variables"], ensure_ascii=False),
                json.dumps(meta["metadata"], ensure_ascii=False),
                meta["expected_column"],
                meta["created_at"],
            ],
        )
        con.executemany(
            "INSERT INTO dataset_rows (dataset_id, version, row_id, position, data) "
            "VALUES (?, ?, ?, ?, ?)",
            [
                [dataset_id, version, r["row_id"], r["position"], json.dumps(r["data"])]
                for r in rows
            ],
        )
    for row in extra.get("eval", {}).values():
        con.execute(
            "INSERT OR REPLACE INTO evals (eval_id, name, dataset_id, dataset_version, config, "
            "session_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                row["eval_id"],
                row["name"],
                row["dataset_id"],
                row["dataset_version"],
                json.dumps(row["config"], ensure_ascii=False),
                row["session_id"],
                row["created_at"],
            ],
        )
    # each op's data: one list per column (see RunLog.write_scores / write_eval_runs)
    _bulk(con, "eval_runs", _eval_run_schema(), list(extra.get("eval_runs", {}).values()))
    _bulk(con, "scores", score_schema(), list(extra.get("scores", {}).values()))


_EVAL_RUN_COLUMNS = EVAL_RUN_COLUMNS  # the name the Postgres port imports
