"""Machinery the HTTP providers share: one lazy httpx client, error mapping, secrets.

Secrets are registered with :func:`promptstate.models.redact.add_secret` when a provider
is built (the API key, secret-looking or ``secret_headers`` header values, credentials
and query values in the base URL), and every string a provider produces passes through
:func:`~promptstate.models.redact.redact` before it is cut short, so no prefix of a key
survives a truncation either.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from promptstate.errors import (
    ProviderConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
)
from promptstate.models.provider import ChatRequest, Provider, RetryPolicy, StreamEvent, Timeouts
from promptstate.models.redact import add_secret, redact
from promptstate.providers._retry import (
    Deadline,
    RetryableError,
    parse_retry_after,
    stream_with_retries,
)
from promptstate.providers._secrets import (
    Hidden,
    add_credential,
    check_header_value,
    display_url,
    is_secret_header,
    redact_httpx_logs,
    register_url_secrets,
    safe_str,
    scrub_chain,
    split_userinfo,
)
from promptstate.providers._sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder
from promptstate.providers._transport import TransportArg, default_transport

__all__ = ["HTTPProvider"]

# Statuses worth sending again: rate limits, request timeouts, server trouble (incl. 529).
_RETRYABLE_STATUS = frozenset({408, 429})

# An error body is read up to this much: the message shown is the first _DETAIL_CHARS
# of it (after redaction), so a secret cut at this boundary is never displayed.
_ERROR_BODY_BYTES = 64 * 1024
_DETAIL_CHARS = 500
_REASON_CHARS = 100


# what httpx.AsyncClient adds to a request, and how it encodes a json= body
_DIRECT_HEADERS = {
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
    "user-agent": f"python-httpx/{httpx.__version__}",
    "content-type": "application/json",
}
_BODY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _is_retryable_status(status: int) -> bool:
    return status in _RETRYABLE_STATUS or status >= 500


def _detail(text: str, limit: int = _DETAIL_CHARS) -> str:
    """Redact first, then cut: a cut through a key must not leave its prefix behind."""
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class HTTPProvider(Provider):
    """Base of the HTTP providers: client lifecycle, retries and error mapping.

    Subclasses set the class attributes and implement :meth:`_attempt`, one try of the
    request that raises :class:`RetryableError` for failures worth retrying.

    Every secret the provider is configured with is registered for redaction here, and
    only the display form of the URL (no user info, no query) is kept in plain sight:
    ``repr(provider)`` and ``vars(provider)`` show no key.
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
        *,
        secret_headers: Iterable[str] = (),
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
            raise ProviderConfigError("max_concurrency must be an int")
        if max_concurrency < 1:
            raise ProviderConfigError("max_concurrency must be at least 1")
        if not isinstance(retry, RetryPolicy):
            raise ProviderConfigError(f"retry must be a RetryPolicy, not {type(retry).__name__}")
        if not isinstance(timeouts, Timeouts):
            raise ProviderConfigError(f"timeouts must be a Timeouts, not {type(timeouts).__name__}")
        if isinstance(secret_headers, str):  # one name, not its letters
            secret_headers = (secret_headers,)
        self.name = name or self.default_name
        url = base_url or os.environ.get(self.base_url_env) or self.default_base_url
        if not isinstance(url, str):
            raise ProviderConfigError(f"base_url must be a string, not {type(url).__name__}")
        url = url.strip()
        register_url_secrets(url)
        redact_httpx_logs()
        # Credentials in the URL go out as a Basic Authorization header that we build:
        # left in the URL, aiohttp refuses them next to the header httpx adds for them.
        url, basic = split_userinfo(url)
        self._url = Hidden(_join_url(url, self.path))
        self._basic_auth = Hidden(basic)
        #: The base URL without user info or query (those stay hidden).
        self.base_url = display_url(url).rstrip("/")
        key = api_key if api_key is not None else os.environ.get(self.api_key_env)
        if key is not None and not isinstance(key, str):
            raise ProviderConfigError(f"api_key must be a string, not {type(key).__name__}")
        # Keys pasted from a file or a terminal often end in a newline; HTTP header
        # values cannot hold one, and an unstripped key would fail with itself quoted.
        key = key.strip() if key else None
        if key:
            add_secret(key)
            if any(ord(c) <= 32 or ord(c) == 127 for c in key):
                raise ProviderConfigError(
                    f"{self.name}: api_key has whitespace or control characters inside it"
                )
        self._api_key = Hidden(key or None)
        extra: dict[str, str] = {}
        secret_names = tuple(secret_headers)
        for header, value in (headers or {}).items():
            clean = check_header_value(header, value)
            if is_secret_header(header, secret_names):
                add_credential(clean)
            extra[header] = clean
        self._extra_headers = Hidden(extra)
        self.retry = retry
        self.timeouts = timeouts
        self.max_concurrency = max_concurrency
        self.max_event_bytes = SSEDecoder(max_event_bytes).max_event_bytes  # validated
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # the default (aiohttp) transport, called directly, and its parsed URL: see _send
        self._direct: httpx.AsyncBaseTransport | None = None
        self._direct_url: Hidden[httpx.URL | None] = Hidden(None)
        self._timeout_ext = {
            "connect": self.timeouts.connect,
            "read": self.timeouts.read,
            "write": self.timeouts.read,
            "pool": None,  # the engine's semaphore queues; a pool wait is not a timeout
        }

    def __repr__(self) -> str:
        return redact(f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})")

    # -- client lifecycle ---------------------------------------------------------------

    def _get_client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._client
        # Connections belong to the loop that opened them; a new loop (asyncio.run per
        # call in a script) needs a new client rather than a pool of dead sockets.
        if client is None or client.is_closed or self._client_loop is not loop:
            transport = self._transport
            direct = None
            if transport is None:
                transport = direct = default_transport(self._url.get())
            elif not isinstance(transport, httpx.AsyncBaseTransport):
                transport = transport()
            client = httpx.AsyncClient(
                timeout=httpx.Timeout(**self._timeout_ext),
                limits=httpx.Limits(
                    max_connections=None,
                    max_keepalive_connections=self.max_concurrency,
                ),
                transport=transport,
            )
            self._client = client
            self._client_loop = loop
            self._direct = direct
            if direct is not None:
                with contextlib.suppress(httpx.InvalidURL):  # reported by the send itself
                    self._direct_url = Hidden(httpx.URL(self._url.get()))
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
        return stream_with_retries(
            self.retry,
            lambda deadline: self._attempt(request, deadline),
            self.timeouts.total,
            self.name,
        )

    async def _attempt(
        self, request: ChatRequest, deadline: Deadline
    ) -> AsyncGenerator[StreamEvent, None]:
        """One try: yield text and usage, raise ProviderError or RetryableError."""
        response = await self._send(self._body(request), deadline, stream=request.stream)
        try:
            content_type = response.headers.get("content-type", "")
            if not request.stream or "text/event-stream" not in content_type:
                # Also covers servers that ignore stream=true and answer with JSON.
                for event in self._parse_json(await self._read_json(response, deadline)):
                    yield event
                return
            async for event in self._parse_stream(response, deadline):
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
    def _parse_stream(
        self, response: httpx.Response, deadline: Deadline
    ) -> AsyncGenerator[StreamEvent, None]:
        """Events of an SSE reply (read with :meth:`_sse`)."""

    @abc.abstractmethod
    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers that carry the key (and API version) for one request."""

    # -- helpers for subclasses ---------------------------------------------------------

    def _stream_failure(self, message: str) -> ProviderStreamError:
        """A stream error whose text (from the server, possibly quoting a key) is redacted."""
        return ProviderStreamError(f"{self.name}: {_detail(message)}")

    def _retryable(self, error: ProviderError, reason: str) -> RetryableError:
        # reasons reach AttemptStarted events, the store and the devtools: redact them too
        return RetryableError(error, _detail(reason, _REASON_CHARS))

    async def _send(
        self, body: Mapping[str, Any], deadline: Deadline, *, stream: bool
    ) -> httpx.Response:
        """POST ``body`` and return a 2xx response with its body unread."""
        client = self._get_client()
        url = self._url.get()
        headers = {**self._extra_headers.get(), **self._auth_headers(self._api_key.get())}
        basic = self._basic_auth.get()
        if basic is not None and not any(k.lower() == "authorization" for k in headers):
            headers["authorization"] = basic
        if stream:
            headers.setdefault("accept", "text/event-stream")
        failure: RetryableError | ProviderError
        direct = self._direct
        try:
            if direct is None:
                request = client.build_request("POST", url, json=body, headers=headers)
                # Always streamed: a body (error or not) is read by us, with a size cap
                # and under the deadline, never whole by httpx.
                response = await deadline.run(client.send(request, stream=True))
            else:
                # The default transport (aiohttp, proxies resolved when it was made) is
                # called directly: AsyncClient.send's layers (cookie jar, auth and
                # redirect hooks, URL merging) cost ~a quarter of a call's CPU, and an
                # API call wants none of them (a redirect is never followed anyway).
                request = httpx.Request(
                    "POST",
                    self._direct_url.get() or url,
                    headers={**_DIRECT_HEADERS, **headers},
                    content=_BODY_JSON(body).encode(),
                    extensions={"timeout": self._timeout_ext},
                )
                response = await deadline.run(direct.handle_async_request(request))
                response.request = request
        except ProviderError:  # the total deadline
            raise
        except Exception as exc:
            if not _is_transport_error(exc):
                raise
            failure = self._transport_error(exc, url, in_body=False)
        else:
            if response.status_code < 400:
                return response
            try:
                raw, _ = await self._read_capped(response, _ERROR_BODY_BYTES, deadline)
            except ProviderError:
                raise
            except Exception as exc:
                if not _is_transport_error(exc):
                    raise
                raw = b""  # the status alone is still worth reporting
            finally:
                await response.aclose()
            failure = self._status_error(response, raw)
        # Raised outside the except block, so the raw httpx error (which may quote what
        # the server echoed) is not attached as __context__ behind the redacted one.
        raise failure

    async def _read_capped(
        self, response: httpx.Response, limit: int, deadline: Deadline
    ) -> tuple[bytes, bool]:
        """Up to ``limit`` bytes of the body, and whether there was more."""
        buf = bytearray()
        chunks = response.aiter_bytes()
        try:
            while True:
                try:
                    chunk = await deadline.run(anext(chunks))
                except StopAsyncIteration:
                    return bytes(buf), False
                buf += chunk
                if len(buf) > limit:
                    return bytes(buf[:limit]), True
        finally:
            await _aclose(chunks)

    async def _read_json(self, response: httpx.Response, deadline: Deadline) -> Any:
        """Read a whole JSON body, at most ``max_event_bytes`` of it."""
        failure: ProviderError | RetryableError
        try:
            raw, more = await self._read_capped(response, self.max_event_bytes, deadline)
        except ProviderError:
            raise
        except Exception as exc:
            if not _is_transport_error(exc):
                raise
            failure = self._transport_error(exc, str(response.url), in_body=True)
        else:
            if more:
                raise ProviderStreamError(
                    f"{self.name}: JSON response larger than "
                    f"max_event_bytes={self.max_event_bytes} bytes",
                    status_code=response.status_code,
                )
            try:
                return json.loads(raw)
            except ValueError:
                snippet = raw[:4096].decode("utf-8", "replace")
                raise ProviderStreamError(
                    f"{self.name}: malformed JSON response: {_detail(snippet, 200)!r}",
                    status_code=response.status_code,
                ) from None
        raise failure

    async def _sse(
        self, response: httpx.Response, deadline: Deadline
    ) -> AsyncGenerator[list[ServerSentEvent], None]:
        """Events of a streaming response, a list per network read, failures mapped.

        Parsing whole reads (rather than ``aiter_lines`` and a generator hop per line)
        is most of what the provider layer costs per request. Each read is bounded by
        the call's total deadline as well as the read timeout: a server that sends a
        keep-alive comment every second never trips the read timeout.
        """
        decoder = SSEDecoder(self.max_event_bytes)
        chunks = response.aiter_bytes()
        when = deadline.when
        failure: RetryableError | ProviderError | None = None
        try:
            while True:
                # Inlined Deadline.run: this is once per network read of every stream.
                timeout = asyncio.timeout_at(when)
                try:
                    async with timeout:
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if timeout.expired():
                        raise deadline.error() from None
                    raise
                try:
                    events = decoder.feed(chunk)
                except ProviderStreamError as exc:  # the event size cap
                    raise ProviderStreamError(f"{self.name}: {exc}") from None
                if events:
                    yield events
        except ProviderError:
            raise
        except Exception as exc:
            if not _is_transport_error(exc):
                raise
            failure = self._transport_error(exc, str(response.url), in_body=True)
        finally:
            await _aclose(chunks)
        if failure is not None:
            raise failure

    def _decode_event(self, data: str) -> dict[str, Any]:
        try:
            obj = json.loads(data)
        except ValueError:
            problem = "invalid JSON"
        else:
            if isinstance(obj, dict):
                return obj
            problem = "not a JSON object"
        # redact the whole line before cutting it: the cut may run through a key
        raise ProviderStreamError(
            f"{self.name}: malformed SSE data line ({problem}): {_detail(data, 200)!r}"
        )

    def _ended_early(self, what: str) -> RetryableError:
        error = ProviderStreamError(f"{self.name}: stream ended before {what}")
        return RetryableError(error, "stream ended early")

    # -- error mapping ------------------------------------------------------------------

    def _transport_error(
        self, exc: Exception, url: str, *, in_body: bool
    ) -> RetryableError | ProviderError:
        if not scrub_chain(exc):
            # the exception's own text quotes a secret even after redacting its args:
            # keep our (redacted) message and drop the raw error from the chain
            cause: BaseException | None = None
            detail = _detail(safe_str(exc))
        else:
            cause = exc
            detail = _detail(str(exc) or type(exc).__name__)
        where = display_url(url)
        error: ProviderError
        if not isinstance(exc, (httpx.HTTPError, httpx.InvalidURL)):
            # What httpx_aiohttp leaves unmapped (a malformed status or header line is
            # aiohttp's ClientResponseError), or a raw socket error: a protocol failure.
            if isinstance(exc, TimeoutError):
                remapped: Exception = (httpx.ReadTimeout if in_body else httpx.ConnectTimeout)(
                    detail
                )
            else:
                remapped = (httpx.ReadError if in_body else httpx.RemoteProtocolError)(detail)
            remapped.__cause__ = cause
            cause = exc = remapped
        if isinstance(exc, httpx.ConnectTimeout) and _not_a_timeout(exc.__cause__):
            # httpx_aiohttp maps every aiohttp.ClientConnectionError (refused, reset,
            # server disconnected) to ConnectTimeout; only real timeouts are timeouts.
            remapped = (httpx.ReadError if in_body else httpx.ConnectError)(detail or "closed")
            remapped.__cause__ = exc.__cause__ if cause is not None else None
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
            _set_cause(error, cause)
            return error
        _set_cause(error, cause)
        return RetryableError(error, reason)

    def _status_error(self, response: httpx.Response, raw: bytes) -> RetryableError | ProviderError:
        status = response.status_code
        detail = _api_error_message(raw, response.charset_encoding or "utf-8")
        message = (
            f"{self.name}: HTTP {status} {_detail(response.reason_phrase, 100)} from "
            f"{display_url(str(response.url))}: {detail}"
        )
        error = ProviderHTTPError(redact(message), status_code=status)
        if _is_retryable_status(status):
            return RetryableError(error, f"HTTP {status}", parse_retry_after(response.headers))
        return error


def _join_url(base: str, path: str) -> str:
    """``base`` with ``path`` appended to its path, its query (``?api-version=``) kept."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return base.rstrip("/") + path
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))


async def _aclose(chunks: AsyncIterator[bytes]) -> None:
    # httpx types aiter_bytes() as an iterator; it is an async generator underneath
    close = getattr(chunks, "aclose", None)
    if close is not None:
        await close()


def _is_transport_error(exc: Exception) -> bool:
    """An error of the network stack (httpx, its transports, sockets), not of our code."""
    if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL, OSError)):
        return True
    module = type(exc).__module__
    return module.startswith(("aiohttp", "httpx_aiohttp", "httpcore", "h11", "anyio"))


def _set_cause(error: ProviderError, cause: BaseException | None) -> None:
    error.__cause__ = cause
    error.__suppress_context__ = True


def _not_a_timeout(cause: BaseException | None) -> bool:
    """True for an aiohttp connection error that httpx_aiohttp reported as a timeout."""
    if cause is None or isinstance(cause, TimeoutError):
        return False
    return type(cause).__module__.startswith("aiohttp")


def _api_error_message(raw: bytes, encoding: str) -> str:
    """The human part of an API error body: ``error.message`` in OpenAI and Anthropic.

    Redacted before it is cut to :data:`_DETAIL_CHARS`.
    """
    try:
        text = raw.decode(encoding, "replace")
    except LookupError:  # an unknown charset in content-type
        text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message: str = err["message"]
            kind = err.get("type") or err.get("code")
            if isinstance(kind, str) and kind:
                message = f"{message} ({kind})"
            return _detail(message)
        if isinstance(err, str):
            return _detail(err)
        if isinstance(body.get("message"), str):
            return _detail(str(body["message"]))
        if isinstance(body.get("detail"), str):  # FastAPI-based local servers
            return _detail(str(body["detail"]))
    return _detail(text) or "(empty body)"
