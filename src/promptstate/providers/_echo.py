"""The offline ``echo`` provider: replies with the rendered last user message."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

from promptstate.errors import ProviderError
from promptstate.models.provider import (
    AttemptStarted,
    ChatRequest,
    Provider,
    Reply,
    StreamEvent,
    TextDelta,
    UsageInfo,
)
from promptstate.models.redact import redact

__all__ = ["Echo"]

_WORD = re.compile(r"\S+\s*|\s+")


class Echo(Provider):
    """Offline provider for demos and tests.

    The reply is the content of the last user message, exactly. With the setting
    ``echo_delay`` (seconds) it streams word by word, sleeping that long before each
    word, which makes streaming and cancellation visible in a notebook. The setting
    ``echo_error`` (a message) makes the call fail with :class:`ProviderError` after
    the text, for exercising error paths offline. Token counts are word counts.

    Parameters
    ----------
    name : str
        Prefix in model strings; ``"echo"`` and ``"echo:<anything>"`` both reach it.
    max_concurrency : int
        Engine-side cap on concurrent calls.
    """

    def __init__(self, name: str = "echo", max_concurrency: int = 1000) -> None:
        self.name = name
        self.max_concurrency = max_concurrency

    def __repr__(self) -> str:
        return f"Echo(name={self.name!r})"

    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        delay = float(request.settings.get("echo_delay", 0) or 0)
        if delay <= 0:
            await asyncio.sleep(0)  # a real await point, like any network call
            events, error = self._reply(request)
            for ev in events:
                yield ev
            if error is not None:
                raise error
            return
        yield AttemptStarted(1, None)
        reply = _last_user(request)
        for piece in _WORD.findall(reply):
            await asyncio.sleep(delay)
            yield TextDelta(piece)
        failure = request.settings.get("echo_error")
        if failure:
            raise ProviderError(redact(f"echo: {failure}"))
        yield _usage(request, reply)

    def reply_now(self, request: ChatRequest) -> Reply | None:
        """Without ``echo_delay`` the reply is known at once: no task needed for it."""
        if float(request.settings.get("echo_delay", 0) or 0) > 0:
            return None
        return self._reply(request)

    @staticmethod
    def _reply(request: ChatRequest) -> Reply:
        reply = _last_user(request)
        events: list[StreamEvent] = [AttemptStarted(1, None)]
        if reply:
            events.append(TextDelta(reply))
        failure = request.settings.get("echo_error")
        if failure:
            return tuple(events), ProviderError(redact(f"echo: {failure}"))
        events.append(_usage(request, reply))
        return tuple(events), None


def _last_user(request: ChatRequest) -> str:
    for m in reversed(request.messages):
        if m["role"] == "user":
            return m["content"]
    return ""


def _usage(request: ChatRequest, reply: str) -> UsageInfo:
    return UsageInfo(
        input_tokens=sum(len(m["content"].split()) for m in request.messages),
        output_tokens=len(reply.split()),
    )
