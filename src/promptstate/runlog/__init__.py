"""The run log: every run, prompt and scoped variable, in a DuckDB file or in Postgres.

``log.RunLog`` composes ``connection`` (file sharing, DuckDB's hardened settings),
``migrations`` (named, append-only), ``writer`` (the one committing thread) and
``queries`` (read-write SQL, read-only SQL with a time limit, typed lookups).
``postgres.PostgresRunLog`` is the same log in a Postgres database a team shares.
:func:`open_run_log` picks one from the ``db`` a session was given.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, TypeAlias

from promptstate._lazy import lazy_attributes as _lazy_attributes
from promptstate.runlog.log import RunLog
from promptstate.runlog.postgres.connection import is_postgres_url

if TYPE_CHECKING:
    from promptstate.runlog.postgres import PostgresRunLog

__all__ = ["AnyRunLog", "PostgresRunLog", "RunLog", "is_postgres_url", "open_run_log"]

# a type for annotations only: the Postgres log is imported when a URL is opened
AnyRunLog: TypeAlias = "RunLog | PostgresRunLog"


__getattr__ = _lazy_attributes(__name__, {"PostgresRunLog": "postgres"})


def open_run_log(
    target: str | os.PathLike[str] | None,
    session_id: str,
    *,
    lock_timeout: float = 60.0,
    exclusive: bool = False,
    **postgres_options: Any,
) -> AnyRunLog:
    """The run log for ``target``: a ``postgresql://`` URL, a DuckDB file, or None (memory).

    ``lock_timeout`` and ``exclusive`` apply to a DuckDB file; ``postgres_options``
    (``query_url``, ``heartbeat_interval``, ``heartbeat_expire``, ``retry_for``,
    ``hostname``) to Postgres.
    """
    if is_postgres_url(target):
        from promptstate.runlog.postgres import PostgresRunLog

        return PostgresRunLog(str(target), session_id, **postgres_options)
    if postgres_options:
        raise TypeError(f"options for a Postgres run log only: {', '.join(postgres_options)}")
    return RunLog(
        None if target is None else os.fspath(target),
        session_id,
        lock_timeout=lock_timeout,
        exclusive=exclusive,
    )
