"""Machinery the HTTP providers share: one lazy httpx client, error mapping, redaction."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
import weakref
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from promptstate.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
)
from promptstate.providers._base import ChatRequest, Provider, RetryPolicy, StreamEvent, Timeouts
from promptstate.providers._retry import RetryableError, parse_retry_after, stream_with_retries
from promptstate.providers._sse import ServerSentEvent, SSEDecoder

__all__ = ["HTTPProvider", "TransportArg", "default_transport"]

# A transport, or a zero-argument factory called for every new client: an instance is
# closed with its client and bound to one event loop, a factory survives both.
TransportArg = httpx.AsyncBaseTransport | Callable[[], httpx.AsyncBaseTransport] | None

# Statuses worth sending again: rate limits, request timeouts, server trouble (incl. 529).
_RETRYABLE_STATUS = frozenset({408, 429})


def default_transport() -> httpx.AsyncBaseTransport | None:
    """The transport a provider uses when given none: aiohttp's, if installed.

    httpx's own pool scans every pooled connection for every request, which under
    concurrency costs milliseconds per request (benchmarks/bench_throughput.py measures
    ~5x the throughput through ``httpx_aiohttp`` at 50 concurrent streams). ``None``
    (httpx's default transport) when ``httpx_aiohttp`` is not importable or
    ``PROMPTSTATE_HTTP_TRANSPORT=httpx`` is set.
    """
    if os.environ.get("PROMPTSTATE_HTTP_TRANSPORT", "").lower() == "httpx":
        return None
    try:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return None

    def session() -> aiohttp.ClientSession:
        # No connection cap here (the engine's per-provider semaphore is the cap; the
        # transport's default of 100 would silently queue a larger max_concurrency),
        # certificates as httpx verifies them, proxies from the environment as httpx.
        connector = aiohttp.TCPConnector(
            limit=0, keepalive_timeout=30.0, ssl=httpx.create_ssl_context()
        )
        made = aiohttp.ClientSession(connector=connector, trust_env=True)
        owner = ref()
        if owner is not None:
            weakref.finalize(owner, _close_dropped_session, made)
        return made

    transport = AiohttpTransport(client=session)
    ref = weakref.ref(transport)
    return transport


def _close_dropped_session(session: Any) -> None:
    """Close the sockets of a session whose client was dropped without ``aclose()``.

    That happens after a synchronous ``Session.close()`` or when a new event loop
    replaces the client; httpx's own pool closes such sockets silently, and aiohttp
    would instead log "Unclosed client session" from its ``__del__``.
    """
    if session.closed:
        return
    connector = session.connector
    with contextlib.suppress(Exception):
        session.detach()
        close = getattr(connector, "_close", None)
        if close is not None:
            close()


def _is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS or status >= 500


class _Secret:
    """Holds the API key so that no repr, vars() dump or debugger view shows it."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None) -> None:
        self._value = value

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>" if self._value else "None"


def _display_url(url: str) -> str:
    """The URL without user info, query or fragment (where keys sometimes hide)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class HTTPProvider(Provider):
    """Base of the HTTP providers: client lifecycle, retries and error mapping.

    Subclasses set the class attributes and implement :meth:`_attempt`, one try of the
    request that raises :class:`RetryableError` for failures worth retrying.
    """

    default_name: ClassVar[str]  # the prefix in model strings unless ``name`` is given
    default_base_url: ClassVar[str]
    base_url_env: ClassVar[str]
    api_key_env: ClassVar[str]
    path: ClassVar[str]  # appended to base_url

    def __init__(
        self,
        name: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, safe to share
        timeouts: Timeouts = Timeouts(),  # noqa: B008
        max_concurrency: int = 16,
        headers: Mapping[str, str] | None = None,
        transport: TransportArg = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.name = name or self.default_name
        url = base_url or os.environ.get(self.base_url_env) or self.default_base_url
        self.base_url = url.rstrip("/")
        key = api_key if api_key is not None else os.environ.get(self.api_key_env)
        self._api_key = _Secret(key or None)
        self.retry = retry
        self.timeouts = timeouts
        self.max_concurrency = max_concurrency
        self._extra_headers = dict(headers or {})
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        url = _display_url(self.base_url)
        return f"{type(self).__name__}(name={self.name!r}, base_url={url!r})"

    # -- client lifecycle ---------------------------------------------------------------

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._client
        # Connections belong to the loop that opened them; a new loop (asyncio.run per
        # call in a script) needs a new client rather than a pool of dead sockets.
        if client is None or client.is_closed or self._client_loop is not loop:
            transport = self._transport
            if transport is None:
                transport = default_transport()
            elif not isinstance(transport, httpx.AsyncBaseTransport):
                transport = transport()
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=self.timeouts.connect,
                    read=self.timeouts.read,
                    write=self.timeouts.read,
                    # The engine's semaphore does the queueing; waiting for a pooled
                    # connection must not count as a timeout.
                    pool=None,
                ),
                limits=httpx.Limits(
                    max_connections=None,
                    max_keepalive_connections=self.max_concurrency,
                ),
                transport=transport,
            )
            self._client = client
            self._client_loop = loop
        return client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        loop, self._client_loop = self._client_loop, None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()

    # -- the public stream --------------------------------------------------------------

    def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        # The retry loop's own async generator, returned as is: one hop fewer for every
        # event than re-yielding it from here.
        return stream_with_retries(self.retry, lambda: self._attempt(request))

    async def _attempt(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """One try: yield text and usage, raise ProviderError or RetryableError."""
        response = await self._send(self.path, self._body(request), stream=request.stream)
        try:
            content_type = response.headers.get("content-type", "")
            if not request.stream or "text/event-stream" not in content_type:
                # Also covers servers that ignore stream=true and answer with JSON.
                for event in self._parse_json(await self._read_json(response)):
                    yield event
                return
            async for event in self._parse_stream(response):
                yield event
        finally:
            await response.aclose()

    @abc.abstractmethod
    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of one request."""

    @abc.abstractmethod
    def _parse_json(self, data: Any) -> list[StreamEvent]:
        """Events of a plain (non-streaming) JSON reply."""

    @abc.abstractmethod
    def _parse_stream(self, response: httpx.Response) -> AsyncGenerator[StreamEvent, None]:
        """Events of an SSE reply."""

    @abc.abstractmethod
    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers that carry the key (and API version) for one request."""

    # -- helpers for subclasses ---------------------------------------------------------

    def _redact(self, text: str) -> str:
        key = self._api_key.get()
        if key and len(key) >= 4:
            text = text.replace(key, "***")
        return text

    async def _send(self, path: str, body: Mapping[str, Any], *, stream: bool) -> httpx.Response:
        """POST ``body`` and return a 2xx response (its body unread when streaming)."""
        client = self._get_client()
        url = f"{self.base_url}{path}"
        headers = {**self._extra_headers, **self._auth_headers(self._api_key.get())}
        if stream:
            headers.setdefault("accept", "text/event-stream")
        try:
            request = client.build_request("POST", url, json=body, headers=headers)
            response = await client.send(request, stream=stream)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, url, in_body=False) from exc
        if response.status_code >= 400:
            try:
                await response.aread()
            except httpx.HTTPError:
                pass  # the status alone is still worth reporting
            finally:
                await response.aclose()
            raise self._status_error(response)
        return response

    async def _read_json(self, response: httpx.Response) -> Any:
        """Read a whole JSON body (already-read bodies included)."""
        try:
            raw = await response.aread()
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, str(response.url), in_body=True) from exc
        try:
            return json.loads(raw)
        except ValueError:
            snippet = raw[:200].decode("utf-8", "replace")
            raise ProviderStreamError(
                self._redact(f"{self.name}: malformed JSON response: {snippet!r}"),
                status_code=response.status_code,
            ) from None

    async def _sse(self, response: httpx.Response) -> AsyncGenerator[list[ServerSentEvent], None]:
        """Events of a streaming response, a list per network read, failures mapped.

        Parsing whole reads (rather than ``aiter_lines`` and a generator hop per line)
        is most of what the provider layer costs per request.
        """
        decoder = SSEDecoder()
        try:
            async for chunk in response.aiter_bytes():
                events = decoder.feed(chunk)
                if events:
                    yield events
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise self._transport_error(exc, str(response.url), in_body=True) from exc

    def _decode_event(self, data: str) -> dict[str, Any]:
        try:
            obj = json.loads(data)
        except ValueError:
            problem = "invalid JSON"
        else:
            if isinstance(obj, dict):
                return obj
            problem = "not a JSON object"
        raise ProviderStreamError(
            self._redact(f"{self.name}: malformed SSE data line ({problem}): {data[:200]!r}")
        )

    def _ended_early(self, what: str) -> RetryableError:
        error = ProviderStreamError(f"{self.name}: stream ended before {what}")
        return RetryableError(error, "stream ended early")

    # -- error mapping ------------------------------------------------------------------

    def _transport_error(
        self, exc: Exception, url: str, *, in_body: bool
    ) -> RetryableError | ProviderError:
        detail = self._redact(str(exc) or type(exc).__name__)
        where = _display_url(url)
        error: ProviderError
        if isinstance(exc, httpx.ConnectTimeout) and _not_a_timeout(exc.__cause__):
            # httpx_aiohttp maps every aiohttp.ClientConnectionError (refused, reset,
            # server disconnected) to ConnectTimeout; only real timeouts are timeouts.
            remapped = (httpx.ReadError if in_body else httpx.ConnectError)(str(exc) or "closed")
            remapped.__cause__ = exc.__cause__
            exc = remapped
        if isinstance(exc, httpx.TimeoutException):
            if isinstance(exc, httpx.ConnectTimeout):
                what = f"connecting to {where} took over {self.timeouts.connect:g}s"
            elif isinstance(exc, httpx.ReadTimeout):
                what = f"no data from {where} for {self.timeouts.read:g}s"
            else:
                what = f"{type(exc).__name__} on {where}"
            error = ProviderTimeoutError(f"{self.name}: timed out: {what}")
            reason = "timeout"
        elif isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)):
            if in_body:
                error = ProviderStreamError(f"{self.name}: connection dropped mid-stream: {detail}")
                reason = "stream dropped"
            else:
                error = ProviderConnectionError(f"{self.name}: cannot reach {where}: {detail}")
                reason = "connection error"
        else:
            # Bad URL, unsupported scheme, decoding trouble: sending again will not help.
            error = ProviderConnectionError(f"{self.name}: request to {where} failed: {detail}")
            error.__cause__ = exc
            return error
        error.__cause__ = exc
        return RetryableError(error, reason)

    def _status_error(self, response: httpx.Response) -> RetryableError | ProviderError:
        status = response.status_code
        detail = _api_error_message(response)
        message = self._redact(
            f"{self.name}: HTTP {status} {response.reason_phrase} from "
            f"{_display_url(str(response.url))}: {detail}"
        )
        error = ProviderHTTPError(message, status_code=status)
        if _is_retryable_status(status):
            return RetryableError(error, f"HTTP {status}", parse_retry_after(response.headers))
        return error


def _not_a_timeout(cause: BaseException | None) -> bool:
    """True for an aiohttp connection error that httpx_aiohttp reported as a timeout."""
    if cause is None or isinstance(cause, TimeoutError):
        return False
    return type(cause).__module__.startswith("aiohttp")


def _api_error_message(response: httpx.Response) -> str:
    """The human part of an API error body: ``error.message`` in OpenAI and Anthropic."""
    try:
        text = response.text
    except (httpx.HTTPError, UnicodeDecodeError):
        return "(unreadable body)"
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message: str = err["message"]
            kind = err.get("type") or err.get("code")
            return f"{message} ({kind})" if isinstance(kind, str) and kind else message
        if isinstance(err, str):
            return err
        if isinstance(body.get("message"), str):
            return str(body["message"])
        if isinstance(body.get("detail"), str):  # FastAPI-based local servers
            return str(body["detail"])
    text = " ".join(text.split())
    return text[:500] or "(empty body)"
