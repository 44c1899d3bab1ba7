"""Friendlier errors for the read-only SQL path.

This is not what makes the path read-only: DuckDB does that (every run-log connection
forbids file and network access and extension loading, with its configuration locked,
and a read-only query runs in a ``READ ONLY`` transaction that cannot write). This check
runs first only so that a refused query gets a message that says why: anything but
SELECT/EXPLAIN, table functions that read files or run SQL, string "tables" that DuckDB
would open as files. It walks DuckDB's own parse tree (``json_serialize_sql``).
"""

from __future__ import annotations

import json
import re
from typing import Any

from promptstate.errors import ReadOnlyQueryError

__all__ = ["check_read_only"]

_ALLOWED_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
_REFUSED_SCALARS = frozenset({"getenv", "read_text", "read_blob", "current_setting", "query"})
_PLAIN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _walk(node: Any, out: dict[str, set[str]]) -> None:
    if isinstance(node, dict):
        kind = node.get("type")
        if kind == "TABLE_FUNCTION":
            fn = node.get("function") or {}
            out["table_functions"].add(str(fn.get("function_name", "")).lower())
        elif kind == "BASE_TABLE":
            out["tables"].add(str(node.get("table_name", "")))
        elif kind == "FUNCTION" and "function_name" in node:
            out["functions"].add(str(node["function_name"]).lower())
        for v in node.values():
            _walk(v, out)
    elif isinstance(node, list):
        for v in node:
            _walk(v, out)


def check_read_only(con: Any, query: str) -> None:
    """Raise :class:`ReadOnlyQueryError` unless ``query`` only reads the log's tables."""
    import duckdb

    if not isinstance(query, str) or not query.strip():
        raise ReadOnlyQueryError("empty query")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise ReadOnlyQueryError(f"cannot parse query: {exc}") from None
    if len(statements) != 1:
        raise ReadOnlyQueryError("send exactly one statement")
    kind = statements[0].type.name
    if kind not in ("SELECT", "EXPLAIN"):
        raise ReadOnlyQueryError(f"only SELECT queries are allowed here, not {kind}")
    tree_json = con.execute(
        "SELECT json_serialize_sql(?)", [query.removeprefix("EXPLAIN ")]
    ).fetchall()
    tree = json.loads(tree_json[0][0])
    if tree.get("error"):
        raise ReadOnlyQueryError(
            f"only SELECT queries are allowed here: {tree.get('error_message')}"
        )
    found: dict[str, set[str]] = {"table_functions": set(), "tables": set(), "functions": set()}
    _walk(tree.get("statements"), found)
    bad_fns = sorted(found["table_functions"] - _ALLOWED_TABLE_FUNCTIONS)
    if bad_fns:
        raise ReadOnlyQueryError(f"table function(s) not allowed here: {', '.join(bad_fns)}")
    files = sorted(t for t in found["tables"] if not _PLAIN_NAME.match(t))
    if files:
        raise ReadOnlyQueryError(f"reading files is not allowed here: {', '.join(files)}")
    bad_scalars = sorted(found["functions"] & _REFUSED_SCALARS)
    if bad_scalars:
        raise ReadOnlyQueryError(f"function(s) not allowed here: {', '.join(bad_scalars)}")
