"""Reading the Postgres run log.

Typed lookups (a run, a cached reply, scoped variables, prompts) go straight to Postgres
through psycopg. SQL from users (``session.runs.sql``, RunHistory, ``promptstate runs``)
stays in DuckDB's dialect: a private in-memory DuckDB loads the postgres extension,
attaches the database ``READ_ONLY``, defines views named like the log's tables, then
turns off external access and locks its configuration, so a query sees the same tables
as on a local file and cannot read files, attach anything or write. ``runs`` reads a
local mirror of the finished runs plus the running ones (``mirror.RunsMirror``), and
every query runs in a ``READ ONLY`` DuckDB transaction, so it cannot write the mirror
either.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promptstate.errors import RunLogError
from promptstate.models.run import RunResult, from_row
from promptstate.runlog.postgres.connection import connect, display_url, transient_errors
from promptstate.runlog.postgres.migrations import SESSIONS_TABLE
from promptstate.runlog.postgres.mirror import DEFAULT_OVERLAP, RunsMirror
from promptstate.runlog.writer import SCOPE_TABLES

__all__ = ["DuckDBOverPostgres", "Lookups", "postgres_extension_path"]

_EXTENSION_PACKAGE = "duckdb_extension_postgres_scanner"


def postgres_extension_path(duckdb_version: str) -> Path:
    """The postgres extension binary for this duckdb, from its PyPI wheel.

    Raises :class:`RunLogError` naming the versions when none matches: the wheel ships
    one binary per exact duckdb version (1.5.x at most so far).
    """
    spec = importlib.util.find_spec(_EXTENSION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RunLogError(
            "querying a Postgres run log needs DuckDB's postgres extension: "
            "pip install 'promptstate[postgres]' (it pins the duckdb version the "
            "extension wheel is built for)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "extensions"
    path = root / duckdb_version / "postgres_scanner.duckdb_extension"
    if not path.exists():
        have = sorted(p.name for p in root.iterdir()) if root.exists() else []
        raise RunLogError(
            f"DuckDB's postgres extension is installed for {', '.join(have) or 'no version'}, "
            f"but this duckdb is {duckdb_version}: pip install 'promptstate[postgres]' "
            "installs matching versions"
        )
    return path


class Lookups:
    """The typed read paths, on one psycopg connection (reconnected when it breaks)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._con: Any = None

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A cursor in autocommit mode (each lookup sees the latest commits)."""
        with self._lock:
            if self._con is None or self._con.closed:
                self._con = connect(self.url, timeout=10.0, autocommit=True)
            try:
                with self._con.cursor() as cur:
                    yield cur
            except transient_errors() as exc:
                self._con.close()
                self._con = None  # the next lookup reconnects
                raise RunLogError(f"run log {display_url(self.url)} unreachable: {exc}") from None

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    def get_run(self, run_id: str) -> RunResult | None:
        """One run by id, parsed, or None."""
        with self.cursor() as cur:
            cur.execute("SELECT * FROM runs WHERE run_id = %s", [run_id])
            cols = [d.name for d in cur.description]
            row = cur.fetchone()
        return None if row is None else from_row(dict(zip(cols, row, strict=True)))

    def cached_response(self, cache_key: str) -> dict[str, Any] | None:
        """The newest successful reply logged under ``cache_key``."""
        with self.cursor() as cur:
            cur.execute(
                "SELECT response, input_tokens, output_tokens FROM runs WHERE cache_key = %s "
                "AND status = 'success' ORDER BY finished_at DESC LIMIT 1",
                [cache_key],
            )
            row = cur.fetchone()
        if row is None:
            return None
        return {"response": row[0], "input_tokens": row[1], "output_tokens": row[2]}

    def fetch_scoped(
        self, user_id: str | None, org_id: str | None, project_id: str | None
    ) -> dict[str, dict[str, str]]:
        """Read the three scoped-variable layers for the given owners."""
        out: dict[str, dict[str, str]] = {"user": {}, "org": {}, "project": {}}
        with self.cursor() as cur:
            for scope, owner in (("user", user_id), ("org", org_id), ("project", project_id)):
                if owner is None:
                    continue
                cur.execute(
                    f"SELECT name, value FROM {SCOPE_TABLES[scope]} WHERE {scope}_id = %s "
                    "AND value IS NOT NULL ORDER BY name",
                    [owner],
                )
                out[scope] = dict(cur.fetchall())
        return out

    def load_prompt(self, prompt_id: str, version: str | None) -> dict[str, Any] | None:
        """A stored prompt version (the newest when ``version`` is None), or None."""
        query = "SELECT definition FROM prompts WHERE prompt_id = %s"
        params: list[Any] = [prompt_id]
        if version is not None:
            query += " AND version = %s"
            params.append(version)
        with self.cursor() as cur:
            cur.execute(query + " ORDER BY created_at DESC LIMIT 1", params)
            row = cur.fetchone()
        if row is None:
            return None
        value = row[0]
        return dict(json.loads(value) if isinstance(value, str) else value)

    def prompt_ids(self) -> list[str]:
        """Ids of the prompts stored in the DB."""
        with self.cursor() as cur:
            cur.execute("SELECT DISTINCT prompt_id FROM prompts ORDER BY 1")
            return [r[0] for r in cur.fetchall()]

    def tables(self) -> list[str]:
        """The log's tables in the ``public`` schema (bookkeeping ones excluded)."""
        with self.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
            )
            return [r[0] for r in cur.fetchall() if r[0] != SESSIONS_TABLE]


class DuckDBOverPostgres:
    """A private in-memory DuckDB whose views read the Postgres tables (read-only).

    It offers ``cursor()`` and ``error`` like the DuckDB log's connection, so the same
    query code (``runlog.queries.run_query``: read-only check, time limit) runs on it.
    With ``mirror`` (the default) ``runs`` is answered from a local copy of the finished
    runs (``RunsMirror``) that ``refresh()`` brings up to date; ``cursor()`` then opens a
    ``READ ONLY`` transaction unless ``read_only_cursor()`` is used (which lets
    ``run_query`` open its own).
    """

    shared = False

    def __init__(
        self,
        url: str,
        tables: list[str],
        *,
        mirror: bool = True,
        mirror_interval: float = 1.0,
        mirror_overlap: float = DEFAULT_OVERLAP,
    ) -> None:
        import duckdb

        self._duckdb = duckdb
        self.url = url
        con = duckdb.connect(
            ":memory:",
            config={"autoload_known_extensions": False, "autoinstall_known_extensions": False},
        )
        try:
            con.execute(f"LOAD '{postgres_extension_path('v' + duckdb.__version__)}'")
            quoted = url.replace("'", "''")
            con.execute(f"ATTACH '{quoted}' AS pg (TYPE postgres, READ_ONLY)")
            self.mirror: RunsMirror | None = None
            if mirror and "runs" in tables:
                self.mirror = RunsMirror(
                    con, url, min_interval=mirror_interval, overlap=mirror_overlap
                )
            for table in tables:
                source = f'pg.public."{table}"'
                if table == "runs" and self.mirror is not None:
                    con.execute(f"CREATE VIEW runs AS {self.mirror.view_sql()}")
                    continue
                con.execute(f'CREATE VIEW "{table}" AS SELECT * FROM {source}')
            # from here on no query can read a file, attach a database or undo this
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            con.close()
            raise RunLogError(
                f"cannot attach {display_url(url)} for queries: {display_url(str(exc))}"
            ) from None
        self._con = con
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> bool:
        """Bring the runs mirror up to date (rate-limited unless ``force``); True if it did."""
        return False if self.mirror is None else self.mirror.refresh(force=force)

    @property
    def error(self) -> type[Exception]:
        """DuckDB's base error class."""
        return self._duckdb.Error

    @contextlib.contextmanager
    def read_only_cursor(self) -> Iterator[Any]:
        """A fresh cursor (queries run concurrently); the caller opens ``READ ONLY``."""
        with self._lock:
            cur = self._con.cursor()
        try:
            yield cur
        finally:
            with contextlib.suppress(self._duckdb.Error):
                cur.close()

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A fresh cursor inside a ``READ ONLY`` transaction (rolled back after)."""
        with self.read_only_cursor() as cur:
            # the mirror is a local table: without this a query could change it
            cur.execute("BEGIN TRANSACTION READ ONLY")
            try:
                yield cur
            finally:
                with contextlib.suppress(self._duckdb.Error):
                    cur.execute("ROLLBACK")

    def own_transaction(self) -> Any:
        """This engine with ``cursor()`` opening no transaction (for read-only queries,
        which open their own ``READ ONLY`` one)."""
        return _OwnTransaction(self)

    def main(self) -> Any:
        """The connection itself."""
        return self._con

    def close(self) -> None:
        """Detach and close."""
        if self.mirror is not None:
            self.mirror.close()
        with contextlib.suppress(self._duckdb.Error):
            self._con.close()


class _OwnTransaction:
    """``cursor()`` and ``error`` of an engine, minus the transaction it opens."""

    def __init__(self, engine: DuckDBOverPostgres) -> None:
        self.cursor = engine.read_only_cursor
        self.error = engine.error
