"""Marshalling store notifications onto the kernel's main loop, coalesced.

Store listeners run on whichever thread dispatched (the main loop while a reply
streams, a kernel subshell thread for widget comm messages). Widget traits must only
be touched on the main loop, and a streaming reply must not become one comm message
per token, so :class:`Coalescer` turns any number of ``request()`` calls, from any
thread, into at most one ``callback()`` per ``interval`` on the loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

__all__ = ["MIN_SYNC_INTERVAL", "Coalescer"]

# Seconds between two trait syncs: at most 25 per second reach the browser.
MIN_SYNC_INTERVAL = 0.04


class Coalescer:
    """Run ``callback`` on ``loop`` soon after ``request()``, at most once per ``interval``.

    The pending flag is cleared *before* the callback reads the state, so a change
    that lands while the callback runs schedules another one: the last state always
    reaches the view (the final text of a reply is exact).

    With ``loop=None`` (no event loop, e.g. a plain script) the callback runs inline,
    serialized by a lock, without throttling.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None,
        callback: Callable[[], None],
        interval: float = MIN_SYNC_INTERVAL,
    ) -> None:
        self._loop = loop
        self._callback = callback
        self._interval = interval
        self._lock = threading.Lock()
        self._inline_lock = threading.RLock()  # serializes callbacks when there is no loop
        self._pending = False
        self._stopped = False
        self._last = float("-inf")
        self.calls = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def request(self) -> None:
        """Ask for a callback run; cheap and safe from any thread."""
        with self._lock:
            if self._pending or self._stopped:
                return
            self._pending = True
        if not self.call_soon(self._schedule):
            with self._lock:
                self._pending = False

    def call_soon(self, fn: Callable[[], None]) -> bool:
        """Run ``fn`` on the loop (inline if there is none); False if the loop is gone."""
        loop = self._loop
        if loop is None:
            with self._inline_lock:
                fn()
            return True
        if loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(fn)
        except RuntimeError:  # closed between the check and the call
            return False
        return True

    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _schedule(self) -> None:
        wait = self._last + self._interval - self._now()
        if wait > 0 and self._loop is not None:
            self._loop.call_later(wait, self._run)
        else:
            self._run()

    def _run(self) -> None:
        with self._lock:
            self._pending = False
            if self._stopped:
                return
        self._last = self._now()
        self.calls += 1
        self._callback()

    def stop(self) -> None:
        """No more callbacks after this."""
        with self._lock:
            self._stopped = True
