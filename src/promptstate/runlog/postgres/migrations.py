"""The run log's migrations, ported to Postgres and applied under an advisory lock.

The statements are the DuckDB ones from ``runlog/migrations.py`` (one list for both
stores), with DuckDB's type names translated; the bookkeeping is the same
``schema_migrations`` table. Several processes may migrate at once: each migrates in
one transaction holding ``pg_advisory_xact_lock``, so exactly one applies each step and
the others then see it recorded.
"""

from __future__ import annotations

import re
from typing import Any

from promptstate.errors import RunLogError
from promptstate.runlog.migrations import MIGRATIONS, Migration
from promptstate.runlog.postgres.connection import psycopg_module

__all__ = ["MIGRATION_LOCK", "PG_INDEXES", "SESSIONS_TABLE", "migrate", "pg_statement"]

# an arbitrary constant shared by every promptstate process: "promptstate" in ASCII
MIGRATION_LOCK = 0x70726F6D7074
# Postgres-only bookkeeping: one row per live session, its heartbeat set by the server
SESSIONS_TABLE = "promptstate_sessions"
_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TIMESTAMP)",
    f"CREATE TABLE IF NOT EXISTS {SESSIONS_TABLE} ("
    "session_id TEXT PRIMARY KEY, hostname TEXT, pid INTEGER, "
    "started_at TIMESTAMP, heartbeat_at TIMESTAMP NOT NULL)",
)
# Postgres-only indexes, (re)checked on every migrate (IF NOT EXISTS: idempotent): the
# local runs mirror (mirror.py) fetches by finished_at and reads the running rows
# (created only when missing: even IF NOT EXISTS would lock the table against writers)
PG_INDEXES = {
    "runs_finished_at": "CREATE INDEX IF NOT EXISTS runs_finished_at ON runs (finished_at)",
    "runs_running": "CREATE INDEX IF NOT EXISTS runs_running ON runs (run_id) "
    "WHERE status = 'running'",
}
_TYPES = (
    (re.compile(r"\bDOUBLE\b(?!\s+PRECISION)", re.IGNORECASE), "DOUBLE PRECISION"),
    (re.compile(r"\bJSON\b", re.IGNORECASE), "JSONB"),
    (re.compile(r"\bHUGEINT\b", re.IGNORECASE), "NUMERIC"),
    (re.compile(r"\bUBIGINT\b", re.IGNORECASE), "NUMERIC"),
    (re.compile(r"\bTINYINT\b", re.IGNORECASE), "SMALLINT"),
    (re.compile(r"\bBLOB\b", re.IGNORECASE), "BYTEA"),
    (re.compile(r"\bINSERT\s+OR\s+IGNORE\b", re.IGNORECASE), "INSERT"),
)


def pg_statement(statement: str) -> str:
    """A DuckDB DDL statement in Postgres' spelling (JSON -> JSONB, DOUBLE -> ...)."""
    for pattern, repl in _TYPES:
        statement = pattern.sub(repl, statement)
    return statement


def migrate(conn: Any, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the missing migrations on psycopg connection ``conn``; the versions applied."""
    psycopg = psycopg_module()
    applied: list[int] = []
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [MIGRATION_LOCK])
            for stmt in _BOOKKEEPING:
                cur.execute(stmt)
            cur.execute("SELECT version FROM schema_migrations")
            done = {r[0] for r in cur.fetchall()}
            for m in migrations:
                if m.version in done:
                    continue
                for stmt in m.statements:
                    cur.execute(pg_statement(stmt))
                cur.execute(
                    "INSERT INTO schema_migrations VALUES (%s, %s, now() AT TIME ZONE 'UTC')",
                    [m.version, m.name],
                )
                applied.append(m.version)
            cur.execute("SELECT to_regclass('runs') IS NOT NULL")
            row = cur.fetchone()
            if row is not None and row[0]:
                for name, stmt in PG_INDEXES.items():
                    cur.execute("SELECT to_regclass(%s) IS NULL", [name])
                    missing = cur.fetchone()
                    if missing is not None and missing[0]:
                        cur.execute(stmt)
    except psycopg.Error as exc:
        raise RunLogError(f"cannot migrate the Postgres run log: {exc}") from None
    return applied
