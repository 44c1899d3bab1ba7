"""Reading the run log: SQL (read-write or read-only with a timeout) and typed lookups."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from promptstate.errors import ReadOnlyQueryError, RunLogError
from promptstate.models.run import RunResult, from_row
from promptstate.runlog.connection import Connection
from promptstate.runlog.readonly import check_read_only
from promptstate.runlog.writer import SCOPE_TABLES

__all__ = [
    "DEFAULT_QUERY_TIMEOUT",
    "arrow_of",
    "cached_response",
    "fetch_scoped",
    "get_run",
    "load_prompt",
    "prompt_ids",
    "run_query",
]

# seconds a read-only query may run before it is interrupted
DEFAULT_QUERY_TIMEOUT = 30.0


def arrow_of(rel: Any) -> Any:
    """A relation's whole result as an Arrow table."""
    # duckdb >= 1.4 names it to_arrow_table; older ones fetch_arrow_table
    return (getattr(rel, "to_arrow_table", None) or rel.fetch_arrow_table)()


def run_query(
    conn: Connection,
    query: str,
    params: Iterable[Any] | None,
    *,
    read_only: bool,
    timeout: float | None,
    finish: Callable[[Any], Any] = arrow_of,
) -> Any:
    """Run ``query`` on its own cursor and return ``finish(relation)`` (None if no result).

    A read-only query runs in a ``READ ONLY`` transaction (DuckDB refuses any write in
    it) and is interrupted after ``timeout`` seconds; either way it never holds the lock
    the writer needs, so logging goes on while it runs.
    """
    if not isinstance(query, str) or not query.strip():
        raise ReadOnlyQueryError("empty query") if read_only else RunLogError("empty query")
    args = None if params is None else list(params)
    with conn.cursor() as cur:
        timer: threading.Timer | None = None
        timed_out = threading.Event()
        try:
            if read_only:
                check_read_only(cur, query)
                cur.execute("BEGIN TRANSACTION READ ONLY")
            if timeout is not None:

                def interrupt() -> None:
                    timed_out.set()
                    cur.interrupt()

                timer = threading.Timer(timeout, interrupt)
                timer.daemon = True
                timer.start()
            rel = cur.sql(query, params=args) if args is not None else cur.sql(query)
            out = None if rel is None else finish(rel)
            return out
        except conn.error as exc:
            if timed_out.is_set():
                raise ReadOnlyQueryError(
                    f"query interrupted after {timeout:g}s (the time limit for this path)"
                ) from None
            if read_only and "read-only" in str(exc).lower():
                raise ReadOnlyQueryError(f"only reading is allowed here: {exc}") from None
            if read_only and "Permission" in type(exc).__name__:
                raise ReadOnlyQueryError(f"not allowed here: {exc}") from None
            raise RunLogError(f"query failed: {exc}") from exc
        finally:
            if timer is not None:
                timer.cancel()
            if read_only:
                # no transaction may be open (the check refused the query first)
                with contextlib.suppress(conn.error):
                    cur.execute("ROLLBACK")


def fetch_scoped(
    conn: Connection, user_id: str | None, org_id: str | None, project_id: str | None
) -> dict[str, dict[str, str]]:
    """Read the three scoped-variable layers for the given owners."""
    out: dict[str, dict[str, str]] = {"user": {}, "org": {}, "project": {}}
    with conn.cursor() as cur:
        for scope, owner in (("user", user_id), ("org", org_id), ("project", project_id)):
            if owner is None:
                continue
            rows = cur.execute(
                f"SELECT name, value FROM {SCOPE_TABLES[scope]} WHERE {scope}_id = ? "
                "AND value IS NOT NULL ORDER BY name",
                [owner],
            ).fetchall()
            out[scope] = dict(rows)
    return out


def load_prompt(conn: Connection, prompt_id: str, version: str | None) -> dict[str, Any] | None:
    """A stored prompt version (the newest when ``version`` is None) as a dict, or None."""
    query = "SELECT definition FROM prompts WHERE prompt_id = ?"
    params: list[Any] = [prompt_id]
    if version is not None:
        query += " AND version = ?"
        params.append(version)
    with conn.cursor() as cur:
        rows = cur.execute(query + " ORDER BY created_at DESC LIMIT 1", params).fetchall()
    return None if not rows else dict(json.loads(rows[0][0]))


def prompt_ids(conn: Connection) -> list[str]:
    """Ids of the prompts stored in the DB."""
    with conn.cursor() as cur:
        rows = cur.execute("SELECT DISTINCT prompt_id FROM prompts ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def get_run(conn: Connection, run_id: str) -> RunResult | None:
    """One run by id, parsed, or None."""
    with conn.cursor() as cur:
        rel = cur.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        cols = [d[0] for d in rel.description]
        rows = rel.fetchall()
    return None if not rows else from_row(dict(zip(cols, rows[0], strict=True)))


def cached_response(conn: Connection, cache_key: str) -> dict[str, Any] | None:
    """The newest successful reply logged under ``cache_key``."""
    with conn.cursor() as cur:
        rows = cur.execute(
            "SELECT response, input_tokens, output_tokens FROM runs WHERE cache_key = ? "
            "AND status = 'success' ORDER BY finished_at DESC LIMIT 1",
            [cache_key],
        ).fetchall()
    if not rows:
        return None
    response, tin, tout = rows[0]
    return {"response": response, "input_tokens": tin, "output_tokens": tout}
