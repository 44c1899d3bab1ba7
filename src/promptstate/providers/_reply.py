"""One HTTP reply as the providers read it, whichever client produced it.

The default client is aiohttp, spoken to directly (:mod:`._transport`); a custom
``transport=`` goes through :class:`httpx.AsyncClient`. Both answers are wrapped in the
same small interface, so the body reading, SSE parsing and error mapping exist once.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp
    import httpx

__all__ = ["AiohttpReply", "HttpxReply", "Reply"]


class Reply(abc.ABC):
    """Status line and headers of a reply whose body is read chunk by chunk."""

    __slots__ = ("headers", "reason", "status", "url")

    status: int
    reason: str
    url: str
    #: case-insensitive header lookup (``.get``), as both clients provide
    headers: Mapping[str, str]

    @property
    @abc.abstractmethod
    def charset(self) -> str | None:
        """The ``charset`` of the content type, if any."""

    @abc.abstractmethod
    async def read(self) -> bytes:
        """The next piece of the body as it arrives; ``b""`` once it has ended."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release the connection (to the pool if the body was read to its end)."""


class AiohttpReply(Reply):
    __slots__ = ("_response",)

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.reason = response.reason or ""
        self.url = str(response.url)
        self.headers = response.headers

    @property
    def charset(self) -> str | None:
        return self._response.charset

    async def read(self) -> bytes:
        return await self._response.content.readany()

    async def aclose(self) -> None:
        # release() keeps a fully read connection for reuse and closes any other
        self._response.release()


class HttpxReply(Reply):
    __slots__ = ("_chunks", "_response")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self._chunks: AsyncIterator[bytes] | None = None
        self.status = response.status_code
        self.reason = response.reason_phrase
        self.url = str(response.url)
        self.headers = response.headers

    @property
    def charset(self) -> str | None:
        return self._response.charset_encoding

    async def read(self) -> bytes:
        if self._chunks is None:
            self._chunks = self._response.aiter_bytes()
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return b""

    async def aclose(self) -> None:
        chunks, self._chunks = self._chunks, None
        close: Any = getattr(chunks, "aclose", None)  # an async generator underneath
        if close is not None:
            await close()
        await self._response.aclose()
