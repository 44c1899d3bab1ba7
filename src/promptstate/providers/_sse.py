"""A minimal Server-Sent Events parser (the subset LLM APIs use)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_sse"]


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


class SSEDecoder:
    """Incremental SSE parser over raw bytes: ``feed(chunk)`` returns the finished events.

    Same rules as :func:`aiter_sse` (LF, CRLF and lone CR line ends; an unterminated
    event at the end of input is dropped), but it works on whole network chunks, so a
    response that arrives in one read costs one call instead of an async-generator hop
    per line. Lines are UTF-8; a multi-byte character split across chunks is kept in
    the buffer until its line is complete.
    """

    __slots__ = ("_buf", "_data", "_event")

    def __init__(self) -> None:
        self._buf = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk`` (appended to any partial line left over) into events."""
        buf = self._buf + chunk if self._buf else chunk
        if b"\r" in buf:
            # A CR at the very end may be the first half of CRLF: keep it for later.
            tail = b"\r" if buf.endswith(b"\r") else b""
            if tail:
                buf = buf[:-1]
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines = buf.split(b"\n")
            self._buf = lines.pop() + tail
        else:
            lines = buf.split(b"\n")
            self._buf = lines.pop()
        out: list[ServerSentEvent] = []
        data = self._data
        for raw in lines:
            if not raw:
                if data:
                    out.append(ServerSentEvent(self._event or "message", "\n".join(data)))
                    data = self._data = []
                self._event = ""
                continue
            if raw[0] == 58:  # b":" comment
                continue
            name, sep, value = raw.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value.decode("utf-8", "replace"))
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
        return out
