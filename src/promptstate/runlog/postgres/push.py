"""``promptstate push``: copy a DuckDB run log into a Postgres one, idempotently.

Every table of the file that the Postgres log also has is copied with
``ON CONFLICT DO NOTHING`` (runs by ``run_id``, prompts by ``(prompt_id, version)``,
scoped variables by owner and name, any other table by its primary key), so pushing
twice adds nothing. A table without a primary key is copied row by row where no equal
row exists yet.
"""

from __future__ import annotations

import os
from typing import Any

from promptstate.errors import RunLogError
from promptstate.runlog.connection import HARDENED_CONFIG
from promptstate.runlog.postgres.connection import connect, psycopg_module
from promptstate.runlog.postgres.migrations import migrate

__all__ = ["push_run_log"]

_BATCH = 5000


def _pg_columns(cur: Any, table: str) -> dict[str, str]:
    cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
        [table],
    )
    return {name: kind for name, kind in cur.fetchall()}


def _has_key(cur: Any, table: str) -> bool:
    cur.execute(
        "SELECT 1 FROM information_schema.table_constraints WHERE table_schema = 'public' "
        "AND table_name = %s AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')",
        [table],
    )
    return cur.fetchone() is not None


def push_run_log(source: str | os.PathLike[str], url: str) -> dict[str, int]:
    """Copy the DuckDB run log ``source`` into the Postgres log at ``url``.

    Returns ``{table: rows added}``; a second push of the same file adds 0 everywhere.
    The Postgres log is migrated first, so it may be empty.
    """
    import duckdb

    psycopg = psycopg_module()
    path = os.fspath(source)
    if not os.path.exists(path):
        raise RunLogError(f"no run log at {path!r}")
    try:
        src = duckdb.connect(path, read_only=True, config=dict(HARDENED_CONFIG))
    except duckdb.Error as exc:
        raise RunLogError(f"cannot open {path!r}: {exc}") from None
    added: dict[str, int] = {}
    pg = connect(url)
    try:
        migrate(pg)
        tables = [
            r[0]
            for r in src.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main' ORDER BY 1"
            ).fetchall()
            if r[0] != "schema_migrations"
        ]
        with pg.transaction(), pg.cursor() as cur:
            for table in tables:
                pg_cols = _pg_columns(cur, table)
                if not pg_cols:
                    continue  # a table of a newer promptstate: nothing to put it in
                src_cols = [r[0] for r in src.execute(f'DESCRIBE "{table}"').fetchall()]
                cols = [c for c in src_cols if c in pg_cols]
                # explicit casts: a bare parameter in a SELECT list would be text
                marks = [f"%s::{pg_cols[c]}" for c in cols]
                names = ", ".join(f'"{c}"' for c in cols)
                keyed = _has_key(cur, table)
                if keyed:
                    sql = (
                        f'INSERT INTO "{table}" ({names}) VALUES ({", ".join(marks)}) '
                        "ON CONFLICT DO NOTHING"
                    )
                else:
                    same = " AND ".join(
                        f'"{c}" IS NOT DISTINCT FROM {m}' for c, m in zip(cols, marks, strict=True)
                    )
                    sql = (
                        f'INSERT INTO "{table}" ({names}) SELECT {", ".join(marks)} '
                        f'WHERE NOT EXISTS (SELECT 1 FROM "{table}" WHERE {same})'
                    )
                rel = src.execute(f'SELECT {names} FROM "{table}"')
                n = 0
                while rows := rel.fetchmany(_BATCH):
                    # the row-equality form takes each value twice (insert, compare)
                    cur.executemany(sql, [list(r) if keyed else list(r) * 2 for r in rows])
                    n += max(cur.rowcount, 0)
                added[table] = n
    except psycopg.Error as exc:
        raise RunLogError(f"push to Postgres failed: {exc}") from None
    finally:
        pg.close()
        src.close()
    return added
