"""A minimal Server-Sent Events parser (the subset LLM APIs use).

Both parsers cap the size of one event (:data:`DEFAULT_MAX_EVENT_BYTES`, 16 MiB): the
largest event an LLM API sends is one chunk of a reply, kilobytes long, so an event
that keeps growing is a broken or hostile server, and without a cap it would grow in
memory until the total deadline. 16 MiB leaves room for very large tool-call
arguments or base64 payloads in one event while bounding what one stream can hold.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import NamedTuple

from promptstate.errors import ProviderConfigError, ProviderStreamError

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "SSEDecoder", "ServerSentEvent", "aiter_sse"]

DEFAULT_MAX_EVENT_BYTES = 16 * 1024 * 1024


class ServerSentEvent(NamedTuple):
    """One dispatched event: its ``event:`` name (``"message"`` if none) and data.

    A named tuple, not a frozen dataclass: a reply is dozens of events, and a frozen
    dataclass's ``__init__`` costs two ``object.__setattr__`` calls per event.
    """

    event: str
    data: str


# ServerSentEvent's own __new__ is Python code; tuple's is not (a third of the cost)
_event = tuple.__new__


def _check_cap(max_event_bytes: object) -> int:
    if (
        isinstance(max_event_bytes, bool)
        or not isinstance(max_event_bytes, int)
        or max_event_bytes < 1
    ):
        raise ProviderConfigError(f"max_event_bytes must be an int >= 1, not {max_event_bytes!r}")
    return max_event_bytes


def _too_large(max_event_bytes: int) -> ProviderStreamError:
    return ProviderStreamError(
        f"SSE event larger than max_event_bytes={max_event_bytes} bytes; "
        "an LLM API sends events of a few kilobytes"
    )


async def aiter_sse(
    lines: AsyncIterable[str], max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
) -> AsyncGenerator[ServerSentEvent, None]:
    """Parse SSE from lines without their terminators (e.g. httpx's ``aiter_lines``).

    Follows the WHATWG rules: ``data:`` lines of one event are joined with ``\\n``, a
    blank line dispatches, ``:`` lines are comments, one space after the colon is
    dropped, ``id``/``retry`` are ignored. An event not closed by a blank line before the
    end of input is discarded, as the spec says, so a truncated stream never yields a
    half-received JSON document.

    Raises
    ------
    ProviderStreamError
        An event's data grew past ``max_event_bytes`` (counted in characters here).
    """
    cap = _check_cap(max_event_bytes)
    event = ""
    data: list[str] = []
    size = 0
    async for line in lines:
        if not line:
            if data:
                yield ServerSentEvent(event or "message", "\n".join(data))
            event = ""
            data = []
            size = 0
            continue
        if line[0] == ":":
            continue
        name, sep, value = line.partition(":")
        if sep and value[:1] == " ":
            value = value[1:]
        if name == "data":
            size += len(value) + 1
            if size > cap:
                raise _too_large(cap)
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

    Work is linear in the input: each chunk is scanned once, a line split over many
    chunks is appended to one ``bytearray`` and joined once, an event's data lines are
    joined once when it is dispatched. (Concatenating the leftover with every new chunk
    made one big event cost quadratic time: 9 s for 8 MB read in 16 KiB chunks.)

    Parameters
    ----------
    max_event_bytes : int
        The most bytes one event (its data lines plus the line being received) may
        hold; more raises :class:`~promptstate.ProviderStreamError`.

    Attributes
    ----------
    bytes_processed : int
        An upper bound on the bytes the decoder has scanned or copied so far, for
        tests that check the work stays proportional to the input.
    """

    __slots__ = (
        "_data",
        "_data_bytes",
        "_event",
        "_line",
        "_skip_lf",
        "bytes_processed",
        "max_event_bytes",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = _check_cap(max_event_bytes)
        self._line = bytearray()  # the unterminated line carried over between chunks
        self._event = ""
        self._data: list[str] = []
        self._data_bytes = 0
        # the previous chunk ended in CR: a LF starting this one is the same line end
        self._skip_lf = False
        self.bytes_processed = 0

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        """Parse ``chunk`` (appended to any partial line left over) into events.

        Raises
        ------
        ProviderStreamError
            The current event grew past ``max_event_bytes``.
        """
        if self._skip_lf and chunk:
            self._skip_lf = False
            if chunk[0] == 10:  # b"\n"
                chunk = chunk[1:]
                self.bytes_processed += len(chunk)
        if not chunk:
            return []
        size = len(chunk)
        if b"\r" in chunk:
            self._skip_lf = chunk[-1] == 13  # b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            self.bytes_processed += 2 * size
        self.bytes_processed += size  # the scan for b"\n"
        cap = self.max_event_bytes
        if b"\n" not in chunk:
            # No line end: keep it for later, appended in place (amortized O(len)).
            self._line += chunk
            self.bytes_processed += len(chunk)
            if len(self._line) + self._data_bytes > cap:
                raise _too_large(cap)
            return []
        if self._line:  # the partial line ends in this chunk: joined once
            self._line += chunk
            chunk = bytes(self._line)
            self._line = bytearray()
            self.bytes_processed += len(chunk)
        # A blank line ends an event, so "\n\n" splits the text into whole events (the
        # last piece is the event still being received). An event that is one
        # "data:" line and nothing else, by far the commonest, is taken whole.
        blocks = chunk.split(b"\n\n")
        self.bytes_processed += len(chunk)  # the split
        rest = blocks.pop()
        out: list[ServerSentEvent] = []
        append = out.append
        clean = not self._data and not self._event  # no event carried over from before
        taken = 0  # bytes of the events taken whole (scanned for b"\n", then decoded)
        for block in blocks:
            if clean and block.startswith(b"data:") and b"\n" not in block:
                value = block[6:] if block[5:6] == b" " else block[5:]
                if len(value) >= cap:
                    raise _too_large(cap)
                taken += len(block)
                append(_event(ServerSentEvent, ("message", value.decode("utf-8", "replace"))))
                continue
            self._lines(block.split(b"\n"), out)
            self._dispatch(out)  # the blank line
            clean = True  # a dispatch leaves nothing pending
        self.bytes_processed += 2 * taken
        if rest:
            lines = rest.split(b"\n")
            self.bytes_processed += len(rest)
            tail = lines.pop()
            self._lines(lines, out)
            if tail:
                self._line += tail
                self.bytes_processed += len(tail)
                if len(self._line) + self._data_bytes > cap:
                    raise _too_large(cap)
        return out

    def _dispatch(self, out: list[ServerSentEvent]) -> None:
        data = self._data
        if data:
            text = data[0] if len(data) == 1 else "\n".join(data)
            out.append(_event(ServerSentEvent, (self._event or "message", text)))
            self.bytes_processed += self._data_bytes
            self._data = []
            self._data_bytes = 0
        self._event = ""

    def _lines(self, lines: list[bytes], out: list[ServerSentEvent]) -> None:
        """Process complete lines (terminators removed) of the current event."""
        cap = self.max_event_bytes
        for raw in lines:
            if not raw:
                self._dispatch(out)
                continue
            if raw[0] == 58:  # b":" comment
                continue
            name, sep, value = raw.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                self._data_bytes += len(value) + 1
                if self._data_bytes > cap:
                    raise _too_large(cap)
                self._data.append(value.decode("utf-8", "replace"))
            elif name == b"event":
                self._event = value.decode("utf-8", "replace")
