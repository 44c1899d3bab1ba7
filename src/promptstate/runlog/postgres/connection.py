"""Postgres URLs and connections (psycopg 3, imported on first use)."""

from __future__ import annotations

import os
import re
import time
from typing import Any

from promptstate.errors import RunLogError

__all__ = ["connect", "display_url", "is_postgres_url", "psycopg_module", "transient_errors"]

_URL = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
_PASSWORD = re.compile(r"(://[^:/@]+:)[^@]*@")


def is_postgres_url(target: str | os.PathLike[str] | None) -> bool:
    """True for ``postgresql://...`` / ``postgres://...`` (a team run log)."""
    return isinstance(target, str) and bool(_URL.match(target))


def display_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    return _PASSWORD.sub(r"\1***@", url)


def psycopg_module() -> Any:
    """The psycopg module, or a :class:`RunLogError` saying which extra to install."""
    try:
        import psycopg
    except ImportError:
        raise RunLogError(
            "a postgresql:// run log needs psycopg: pip install 'promptstate[postgres]'"
        ) from None
    return psycopg


def transient_errors() -> tuple[type[BaseException], ...]:
    """psycopg errors worth retrying after reconnecting (server gone, restarting...)."""
    psycopg = psycopg_module()
    return (psycopg.OperationalError, psycopg.InterfaceError)


def connect(url: str, *, timeout: float = 30.0, autocommit: bool = False) -> Any:
    """A psycopg connection, retrying an unreachable server for up to ``timeout`` s."""
    psycopg = psycopg_module()
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        try:
            return psycopg.connect(
                url, autocommit=autocommit, connect_timeout=max(1, min(10, int(timeout)))
            )
        except psycopg.OperationalError as exc:
            if time.monotonic() + delay >= deadline:
                raise RunLogError(
                    f"cannot connect to the run log {display_url(url)}: {exc}".strip()
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
