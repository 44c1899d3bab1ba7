"""The team run log: the same tables in Postgres, written with psycopg 3.

``log.PostgresRunLog`` has the public methods of the DuckDB ``RunLog``. It composes
``connection`` (URLs, connecting with retries), ``migrations`` (the DuckDB migrations
ported, under an advisory lock), ``writer`` (the shared group-commit queue with a
Postgres commit), ``heartbeat`` (liveness of sessions on any machine), ``queries``
(typed lookups via psycopg; SQL in DuckDB's dialect through its postgres extension) and
``push`` (copy a DuckDB file into Postgres, idempotently). psycopg is imported lazily:
the package imports without the ``promptstate[postgres]`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptstate._lazy import lazy_attributes as _lazy_attributes
from promptstate.runlog.postgres.connection import display_url, is_postgres_url

if TYPE_CHECKING:
    from promptstate.runlog.postgres.log import PostgresRunLog
    from promptstate.runlog.postgres.push import push_run_log

__all__ = ["PostgresRunLog", "display_url", "is_postgres_url", "push_run_log"]

# the log and push modules are imported on first use: a DuckDB-only session (and every
# CLI start) does not pay for them (~40 ms of `import promptstate` here)
__getattr__ = _lazy_attributes(__name__, {"PostgresRunLog": "log", "push_run_log": "push"})
