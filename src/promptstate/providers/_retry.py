"""Retry loop shared by the HTTP providers: backoff, ``Retry-After``, attempt events.

The total deadline lives here too: :class:`Deadline` is started when a call's stream is
first consumed and bounds every attempt, every backoff sleep and every network read of
that call.
"""

from __future__ import annotations

import asyncio
import email.utils
import inspect
import logging
import random
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextlib import aclosing
from typing import Any, TypeVar

from promptstate.errors import ProviderError, ProviderTimeoutError
from promptstate.models.provider import AttemptStarted, RetryPolicy, StreamEvent, TextDelta

__all__ = [
    "Deadline",
    "RetryableError",
    "backoff_delay",
    "parse_retry_after",
    "stream_with_retries",
]

_log = logging.getLogger("promptstate")
_T = TypeVar("_T")


class Deadline:
    """The end of one call's total time budget, in event-loop time.

    One timer per call, not one per await: :meth:`run` arms it around a single await
    and the timer, when it fires, cancels the task only while it is armed. A call does
    two or three guarded awaits per attempt (the POST, each network read), and an
    ``asyncio.timeout`` for each cost a Timeout object, a heap push and a cancel.

    Parameters
    ----------
    total : float
        Seconds from now.
    name : str
        The provider's name, for the error message.
    """

    __slots__ = ("_armed", "_fired", "_handle", "_loop", "name", "total", "when")

    def __init__(self, total: float, name: str) -> None:
        self.total = total
        self.name = name
        self._loop = asyncio.get_running_loop()
        self.when = self._loop.time() + total
        self._handle: asyncio.TimerHandle | None = None
        self._armed: asyncio.Task[Any] | None = None  # the task inside a guarded await
        self._fired = False

    def remaining(self) -> float:
        """Seconds left (negative once passed)."""
        return self.when - self._loop.time()

    def error(self) -> ProviderTimeoutError:
        """The error a call that ran out of time ends with."""
        return ProviderTimeoutError(
            f"{self.name}: timed out: exceeded total deadline of {self.total:g}s"
        )

    def _expire(self) -> None:
        self._fired = True
        task, self._armed = self._armed, None
        if task is not None:
            task.cancel()

    def close(self) -> None:
        """Drop the timer (the call is over): no handle waits in the loop until ``when``."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    async def run(self, awaitable: Awaitable[_T]) -> _T:
        """Await ``awaitable``, raising :meth:`error` if the deadline passes first.

        Guards single awaits (one network read, one send), never a ``yield``: a timeout
        held across a yield would cancel whatever the consumer awaits in between. So the
        timer only cancels while an await here is in progress; one that fired in
        between fails the next guarded await before it starts.
        """
        if self._fired:
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never started: no "was never awaited" warning
            raise self.error()
        task = asyncio.current_task()
        if task is None:  # pragma: no cover - providers always run in a task
            raise RuntimeError("Deadline.run outside a task")
        if self._handle is None:
            self._handle = self._loop.call_at(self.when, self._expire)
        cancelling = task.cancelling()
        self._armed = task
        try:
            result = await awaitable
        except asyncio.CancelledError:
            # ours only if the timer fired and no other cancel is pending on the task
            if self._fired and task.uncancel() <= cancelling:
                raise self.error() from None
            raise
        finally:
            self._armed = None
        if self._fired and task.cancelling() > cancelling:
            # the awaitable swallowed our cancel: take it back, the deadline still passed
            task.uncancel()
            raise self.error()
        return result


class RetryableError(Exception):
    """Internal signal: this attempt failed in a way that may succeed if sent again.

    Never escapes the providers package: the retry loop unwraps ``error`` when it gives
    up, so callers only ever see :class:`~promptstate.ProviderError` subclasses.
    """

    def __init__(self, error: ProviderError, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.retry_after = retry_after


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait according to ``retry-after-ms`` or ``Retry-After``, if given.

    ``Retry-After`` may be delta-seconds or an HTTP date; unparsable values are ignored.
    """
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # HTTP dates are GMT; a naive result came from "-0000"
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def backoff_delay(
    policy: RetryPolicy,
    failed_attempt: int,
    retry_after: float | None = None,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to sleep after attempt number ``failed_attempt`` (1-based) failed."""
    if retry_after is not None:
        # The server knows its own rate-limit window better than our exponent does.
        return min(retry_after, policy.max_delay)
    delay = policy.base_delay * 2.0 ** (failed_attempt - 1)
    delay *= 1.0 + policy.jitter * (2.0 * rand() - 1.0)
    return max(0.0, min(delay, policy.max_delay))


async def stream_with_retries(
    policy: RetryPolicy,
    attempt: Callable[[Deadline], AsyncGenerator[StreamEvent, None]],
    total: float,
    name: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[StreamEvent, None]:
    """Run ``attempt(deadline)`` until it completes, retrying :class:`RetryableError`.

    A retry is only allowed while no :class:`TextDelta` has been yielded for this call:
    text already shown to the caller cannot be taken back. The whole call, retries and
    backoff included, must end within ``total`` seconds: ``attempt`` bounds its awaits
    with the :class:`Deadline` it is given, and a backoff that would end past it is not
    slept (the last failure is raised instead).
    """
    deadline = Deadline(total, name)
    try:
        number = 1
        reason: str | None = None
        delay = 0.0
        while True:
            yield AttemptStarted(number, reason, delay)
            if delay > 0:
                await sleep(delay)
            text_sent = False
            try:
                async with aclosing(attempt(deadline)) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            text_sent = True
                        yield event
                return
            except RetryableError as failure:
                if text_sent or number >= policy.max_attempts:
                    raise _final(failure.error, number) from failure.error.__cause__
                delay = backoff_delay(policy, number, failure.retry_after)
                if delay >= deadline.remaining():
                    _log.info(
                        "%s: not retrying after attempt %d (%s): a %.3gs backoff would pass "
                        "the total deadline of %gs",
                        name,
                        number,
                        failure.reason,
                        delay,
                        total,
                    )
                    raise _final(failure.error, number) from failure.error.__cause__
                reason = failure.reason
                number += 1
            except ProviderError as error:
                error.attempts = number
                raise

    finally:
        deadline.close()  # the call is over, however it ended


def _final(error: ProviderError, attempts: int) -> ProviderError:
    if attempts <= 1:
        return error
    # Rebuild so the message says retries were tried; same class, same status.
    final = type(error)(
        f"{error} (after {attempts} attempts)",
        status_code=error.status_code,
        attempts=attempts,
    )
    final.__cause__ = error.__cause__
    return final
