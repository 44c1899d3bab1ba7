"""The run log's DuckDB connection: opened on demand, shared between processes.

DuckDB lets only one process open a file, so a shared file is held only while there is
work (released after ``hold_idle`` seconds without any, and at least every ``max_hold``
seconds under load so other processes get their turn); opening retries lock conflicts
with jittered backoff for up to ``lock_timeout`` seconds.

Every connection is opened with DuckDB's own hardening: no file system or network
access from SQL, no extension autoload or autoinstall, and the configuration locked, so
no query on any path can read a file, fetch an extension or turn these back on.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

from promptstate.errors import RunLogError, RunLogLockedError

__all__ = ["HARDENED_CONFIG", "Connection"]

HARDENED_CONFIG: dict[str, Any] = {
    "enable_external_access": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "lock_configuration": True,
}


def _is_lock_error(exc: BaseException) -> bool:
    text = str(exc)
    return "lock" in text.lower() and ("Could not set lock" in text or "Conflicting lock" in text)


class Connection:
    """One DuckDB connection with reference-counted use and idle release."""

    def __init__(
        self,
        path: str | None,
        *,
        shared: bool,
        lock_timeout: float,
        hold_idle: float = 1.0,
        max_hold: float = 2.0,
    ) -> None:
        import duckdb

        self._duckdb = duckdb
        self.path = path
        self.shared = shared
        self.lock_timeout = lock_timeout
        self.hold_idle = hold_idle
        self.max_hold = max_hold
        self._lock = threading.RLock()
        self._con: Any = None
        self._users = 0  # cursors handed out and not yet returned
        self.contended = False
        self._opened_at = 0.0
        self._last_use = 0.0
        self.opens = 0
        self.lock_waits = 0
        self.lock_wait_seconds = 0.0

    @property
    def error(self) -> type[Exception]:
        """DuckDB's base error class."""
        return self._duckdb.Error

    def _connect(self) -> Any:
        duckdb = self._duckdb
        target = ":memory:" if self.path is None else self.path
        deadline = time.monotonic() + self.lock_timeout
        t0 = time.monotonic()
        delay = 0.005
        tries = 0
        while True:
            tries += 1
            try:
                con = duckdb.connect(target, config=dict(HARDENED_CONFIG))
            except duckdb.IOException as exc:
                if not _is_lock_error(exc):
                    raise RunLogError(f"cannot open run log {target!r}: {exc}") from None
                if time.monotonic() >= deadline:
                    raise RunLogLockedError(
                        f"run log {target!r} stayed locked by another process for "
                        f"{self.lock_timeout:g}s ({tries} tries); close the other program "
                        "holding it (a DuckDB shell?) or use another db file"
                    ) from None
                # jitter so several waiting processes do not retry in lockstep
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 1.5, 0.02)
                continue
            except duckdb.Error as exc:
                raise RunLogError(f"cannot open run log {target!r}: {exc}") from None
            self.contended = tries > 1
            if tries > 1:
                self.lock_waits += 1
                self.lock_wait_seconds += time.monotonic() - t0
            self.opens += 1
            return con

    @contextlib.contextmanager
    def cursor(self) -> Iterator[Any]:
        """A fresh cursor of the open connection (opened on demand).

        Cursors run concurrently (DuckDB's MVCC), so a slow query never holds up a
        commit; the connection is not released while any cursor is out.
        """
        with self._lock:
            if self._con is None:
                self._con = self._connect()
                self._opened_at = time.monotonic()
            cur = self._con.cursor()
            self._users += 1
        try:
            yield cur
        finally:
            with contextlib.suppress(self._duckdb.Error):
                cur.close()
            with self._lock:
                self._users -= 1
                self._last_use = time.monotonic()

    @contextlib.contextmanager
    def main(self) -> Iterator[Any]:
        """The connection itself (lazy relations of the exclusive/in-memory modes)."""
        with self._lock:
            if self._con is None:
                self._con = self._connect()
                self._opened_at = time.monotonic()
            try:
                yield self._con
            finally:
                self._last_use = time.monotonic()

    def release(self, force: bool = False) -> bool:
        """Close the connection if shared and idle (or held too long); True if closed."""
        with self._lock:
            if self._con is None or (self._users and not force):
                return False
            now = time.monotonic()
            if not force and (
                not self.shared
                or (now - self._last_use < self.hold_idle and now - self._opened_at < self.max_hold)
            ):
                return False
            with contextlib.suppress(self._duckdb.Error):
                self._con.close()
            self._con = None
            return True
