"""Liveness across machines: each session's heartbeat, and recovery of dead sessions' runs.

A pid means nothing on another machine, so every live session keeps a row in
``promptstate_sessions`` whose ``heartbeat_at`` it sets (with the *server's* clock, so
clients' clocks may disagree) every ``interval`` seconds. A session whose heartbeat is
older than ``expire_after`` seconds is dead: any session that sees it marks its
``running`` rows ``interrupted`` and drops its row. A session of this host whose pid is
gone is dead at once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from promptstate.runlog.postgres.connection import connect
from promptstate.runlog.postgres.migrations import SESSIONS_TABLE

__all__ = ["Heartbeat", "recover_interrupted"]

log = logging.getLogger("promptstate")

_NOW = "(now() AT TIME ZONE 'UTC')"
INTERRUPTED = "the process running it ended before it finished"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover_interrupted(
    con: Any, *, hostname: str, expire_after: float, live: Callable[[str], bool]
) -> int:
    """Mark the ``running`` rows of dead sessions ``interrupted``; how many rows changed.

    ``live(session_id)`` says whether a session is alive in this process (never expired).
    Runs whose session has no row at all (closed, or pushed from a file) count as dead.
    """
    with con.transaction(), con.cursor() as cur:
        cur.execute(
            f"SELECT session_id, hostname, pid, "
            f"extract(epoch FROM {_NOW} - heartbeat_at) FROM {SESSIONS_TABLE}"
        )
        dead = [
            sid
            for sid, host, pid, age in cur.fetchall()
            if not live(sid)
            and (
                float(age) > expire_after
                or (host == hostname and pid is not None and not _pid_alive(pid))
            )
        ]
        if dead:
            cur.execute(f"DELETE FROM {SESSIONS_TABLE} WHERE session_id = ANY(%s)", [dead])
        cur.execute(
            f"UPDATE runs SET status = 'interrupted', finished_at = {_NOW}, "
            "error = coalesce(error, %s) "
            "WHERE status IN ('running', 'queued') AND (session_id = ANY(%s) OR "
            f"session_id IS NULL OR session_id NOT IN (SELECT session_id FROM {SESSIONS_TABLE}))",
            [INTERRUPTED, dead],
        )
        return int(cur.rowcount)


class Heartbeat:
    """The thread that keeps one session's row fresh and sweeps up dead sessions."""

    def __init__(
        self,
        url: str,
        session_id: str,
        *,
        hostname: str,
        pid: int,
        interval: float,
        expire_after: float,
        live: Callable[[str], bool],
    ) -> None:
        self.url = url
        self.session_id = session_id
        self.hostname = hostname
        self.pid = pid
        self.interval = interval
        self.expire_after = expire_after
        self._live = live
        self._stop = threading.Event()
        self._con: Any = None
        self.beats = 0
        self.recovered = 0
        self._thread = threading.Thread(target=self._run, name="promptstate-heartbeat", daemon=True)

    def register(self, con: Any) -> int:
        """Insert this session's row, recover dead sessions' runs, start beating."""
        with con.transaction(), con.cursor() as cur:
            cur.execute(
                f"INSERT INTO {SESSIONS_TABLE} VALUES (%s, %s, %s, {_NOW}, {_NOW}) "
                "ON CONFLICT (session_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
                [self.session_id, self.hostname, self.pid],
            )
        n = recover_interrupted(
            con, hostname=self.hostname, expire_after=self.expire_after, live=self._live
        )
        self._thread.start()
        return n

    def beat(self) -> None:
        """Refresh the heartbeat (re-registering if another session expired us)."""
        if self._con is None or self._con.closed:
            self._con = connect(self.url, timeout=max(1.0, self.interval))
        with self._con.transaction(), self._con.cursor() as cur:
            cur.execute(
                f"INSERT INTO {SESSIONS_TABLE} VALUES (%s, %s, %s, {_NOW}, {_NOW}) "
                "ON CONFLICT (session_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at",
                [self.session_id, self.hostname, self.pid],
            )
        self.beats += 1
        self.recovered += recover_interrupted(
            self._con, hostname=self.hostname, expire_after=self.expire_after, live=self._live
        )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except Exception as exc:
                # the server is away: the writer queues; beat again next time
                log.warning("promptstate: run log heartbeat failed: %s", exc)
                if self._con is not None:
                    try:
                        self._con.close()
                    except Exception:
                        log.debug("promptstate: closing the heartbeat connection failed")
                self._con = None

    def stop(self, con: Any | None) -> None:
        """Stop beating and remove this session's row (its runs are all committed)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if con is not None:
            try:
                with con.transaction(), con.cursor() as cur:
                    cur.execute(
                        f"DELETE FROM {SESSIONS_TABLE} WHERE session_id = %s", [self.session_id]
                    )
            except Exception as exc:
                log.warning("promptstate: could not unregister the session: %s", exc)
        if self._con is not None:
            try:
                self._con.close()
            except Exception:
                log.debug("promptstate: closing the heartbeat connection failed")
            self._con = None
