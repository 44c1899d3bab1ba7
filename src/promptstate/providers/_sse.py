"""A minimal Server-Sent Events parser (the subset LLM APIs use)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

__all__ = ["ServerSentEvent", "aiter_sse"]


@dataclass(frozen=True)
class ServerSentEvent:
    """One dispatched event: its ``event:`` name (``"message"`` if none) and data."""

    event: str
    data: str


async def aiter_sse(lines: AsyncIterable[str]) -> AsyncGenerator[ServerSentEvent, None]:
    """Parse SSE from lines without their terminators (e.g. httpx's ``aiter_lines``).

    Follows the WHATWG rules: ``data:`` lines of one event are joined with ``\\n``, a
    blank line dispatches, ``:`` lines are comments, one space after the colon is
    dropped, ``id``/``retry`` are ignored. An event not closed by a blank line before the
    end of input is discarded, as the spec says, so a truncated stream never yields a
    half-received JSON document.
    """
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data))
            event = ""
            data = []
            continue
        if line[0] == ":":
            continue
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
