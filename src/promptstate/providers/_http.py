"""Machinery the HTTP providers share: one lazy client per loop, body reading, secrets.

Secrets are registered with :func:`promptstate.models.redact.add_secret` when a provider
is built (the API key, secret-looking or ``secret_headers`` header values, credentials
and query values in the base URL), and every string a provider produces passes through
:func:`~promptstate.models.redact.redact` before it is cut short, so no prefix of a key
survives a truncation either.
"""

from __future__ import annotations

import abc
import asyncio
import json
import os
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import orjson

from promptstate.errors import ProviderConfigError, ProviderError, ProviderStreamError
from promptstate.models.provider import ChatRequest, Provider, RetryPolicy, StreamEvent, Timeouts
from promptstate.models.redact import add_secret, redact
from promptstate.providers._errors import (
    ERROR_BODY_BYTES,
    REASON_CHARS,
    detail,
    status_error,
    transport_error,
)
from promptstate.providers._retry import Deadline, RetryableError, stream_with_retries
from promptstate.providers._secrets import (
    Hidden,
    add_credential,
    check_header_value,
    display_url,
    is_secret_header,
    redact_httpx_logs,
    register_url_secrets,
    split_userinfo,
)
from promptstate.providers._sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent, SSEDecoder
from promptstate.providers._transport import Client, is_transport_error, make_client

if TYPE_CHECKING:
    from promptstate.providers._reply import Reply
    from promptstate.providers._transport import TransportArg

__all__ = ["HTTPProvider"]

# orjson parses an SSE event ~3.5x faster than json (a send reads ~20 of them)
_fast_loads = orjson.loads
_INVALID = object()
_BODY_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


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
        # Credentials in the URL go out as a Basic Authorization header that we build,
        # the same whichever client sends (and never in a logged URL).
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
        self._client: Client | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return redact(f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})")

    # -- client lifecycle ---------------------------------------------------------------

    def _get_client(self) -> Client:
        loop = asyncio.get_running_loop()
        client = self._client
        # Connections belong to the loop that opened them; a new loop (asyncio.run per
        # call in a script) needs a new client rather than a pool of dead sockets.
        if client is None or client.closed or self._client_loop is not loop:
            client = make_client(
                self._url.get(), self.timeouts, self.max_concurrency, self._transport
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
        reply = await self._send(self._body(request), deadline, stream=request.stream)
        try:
            content_type = reply.headers.get("content-type", "")
            if not request.stream or "text/event-stream" not in content_type:
                # Also covers servers that ignore stream=true and answer with JSON.
                for event in self._parse_json(await self._read_json(reply, deadline)):
                    yield event
                return
            async for event in self._parse_stream(reply, deadline):
                yield event
        finally:
            await reply.aclose()

    @abc.abstractmethod
    def _body(self, request: ChatRequest) -> dict[str, Any]:
        """The JSON body of one request."""

    @abc.abstractmethod
    def _parse_json(self, data: Any) -> list[StreamEvent]:
        """Events of a plain (non-streaming) JSON reply."""

    @abc.abstractmethod
    def _parse_stream(self, reply: Reply, deadline: Deadline) -> AsyncGenerator[StreamEvent, None]:
        """Events of an SSE reply (read with :meth:`_sse`)."""

    @abc.abstractmethod
    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        """Headers that carry the key (and API version) for one request."""

    # -- helpers for subclasses ---------------------------------------------------------

    def _stream_failure(self, message: str) -> ProviderStreamError:
        """A stream error whose text (from the server, possibly quoting a key) is redacted."""
        return ProviderStreamError(f"{self.name}: {detail(message)}")

    def _retryable(self, error: ProviderError, reason: str) -> RetryableError:
        # reasons reach AttemptStarted events, the store and the devtools: redact them too
        return RetryableError(error, detail(reason, REASON_CHARS))

    async def _send(self, body: Mapping[str, Any], deadline: Deadline, *, stream: bool) -> Reply:
        """POST ``body`` and return a 2xx reply with its body unread."""
        client = self._get_client()
        url = self._url.get()
        headers = {**self._extra_headers.get(), **self._auth_headers(self._api_key.get())}
        basic = self._basic_auth.get()
        if basic is not None and not any(k.lower() == "authorization" for k in headers):
            headers["authorization"] = basic
        if stream:
            headers.setdefault("accept", "text/event-stream")
        failure: RetryableError | ProviderError
        try:
            reply = await deadline.run(client.post(url, headers, _BODY_JSON(body).encode()))
        except ProviderError:  # the total deadline
            raise
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            failure = transport_error(self.name, self.timeouts, exc, url, in_body=False)
        else:
            # a redirect is never followed (it could send the key elsewhere): an error
            if 200 <= reply.status < 300:
                return reply
            try:
                raw, _ = await self._read_capped(reply, ERROR_BODY_BYTES, deadline)
            except ProviderError:
                raise
            except Exception as exc:
                if not is_transport_error(exc):
                    raise
                raw = b""  # the status alone is still worth reporting
            finally:
                await reply.aclose()
            failure = status_error(self.name, reply, raw)
        # Raised outside the except block, so the raw transport error (which may quote
        # what the server echoed) is not attached as __context__ behind the redacted one.
        raise failure

    async def _read_capped(
        self, reply: Reply, limit: int, deadline: Deadline
    ) -> tuple[bytes, bool]:
        """Up to ``limit`` bytes of the body, and whether there was more."""
        buf = bytearray()
        while True:
            chunk = await deadline.run(reply.read())
            if not chunk:
                return bytes(buf), False
            buf += chunk
            if len(buf) > limit:
                return bytes(buf[:limit]), True

    async def _read_json(self, reply: Reply, deadline: Deadline) -> Any:
        """Read a whole JSON body, at most ``max_event_bytes`` of it."""
        failure: ProviderError | RetryableError
        try:
            raw, more = await self._read_capped(reply, self.max_event_bytes, deadline)
        except ProviderError:
            raise
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            failure = transport_error(self.name, self.timeouts, exc, reply.url, in_body=True)
        else:
            if more:
                raise ProviderStreamError(
                    f"{self.name}: JSON response larger than "
                    f"max_event_bytes={self.max_event_bytes} bytes",
                    status_code=reply.status,
                )
            try:
                return json.loads(raw)
            except ValueError:
                snippet = raw[:4096].decode("utf-8", "replace")
                raise ProviderStreamError(
                    f"{self.name}: malformed JSON response: {detail(snippet, 200)!r}",
                    status_code=reply.status,
                ) from None
        raise failure

    async def _sse(
        self, reply: Reply, deadline: Deadline
    ) -> AsyncGenerator[list[ServerSentEvent], None]:
        """Events of a streaming reply, a list per network read, failures mapped.

        Parsing whole reads (rather than a generator hop per line) is most of what the
        provider layer costs per request. Each read is bounded by the call's total
        deadline as well as the read timeout: a server that sends a keep-alive comment
        every second never trips the read timeout.
        """
        decoder = SSEDecoder(self.max_event_bytes)
        read = reply.read
        guarded = deadline.run
        failure: RetryableError | ProviderError | None = None
        try:
            while True:
                chunk = await guarded(read())
                if not chunk:
                    return
                try:
                    events = decoder.feed(chunk)
                except ProviderStreamError as exc:  # the event size cap
                    raise ProviderStreamError(f"{self.name}: {exc}") from None
                if events:
                    yield events
        except ProviderError:
            raise
        except Exception as exc:
            if not is_transport_error(exc):
                raise
            failure = transport_error(self.name, self.timeouts, exc, reply.url, in_body=True)
        if failure is not None:
            raise failure

    @staticmethod
    def _read_batch(
        batch: list[ServerSentEvent], handle: Callable[[ServerSentEvent, list[str]], None]
    ) -> tuple[str, Exception | None]:
        """The text of one network read's events, and the failure that cut it short.

        ``handle(event, texts)`` reads one event and appends its text, if any. The text of
        one read goes out as one delta: its events arrived together, and a delta per
        event cost a hop through every layer above. Text before a failure was received,
        so it is returned with it (and the failure raised after it is passed on).
        """
        texts: list[str] = []
        try:
            for sse in batch:
                handle(sse, texts)
        except Exception as exc:
            return "".join(texts), exc
        return (texts[0] if len(texts) == 1 else "".join(texts)), None

    def _decode_event(self, data: str) -> dict[str, Any]:
        try:
            obj = _fast_loads(data)
        except ValueError:
            # what orjson refuses and json takes (a lone surrogate escape, NaN) reads
            # as json reads it; an integer past 64 bits becomes a float (not a count)
            try:
                obj = json.loads(data)
            except ValueError:
                obj = _INVALID
        if obj is _INVALID:
            problem = "invalid JSON"
        else:
            if isinstance(obj, dict):
                return obj
            problem = "not a JSON object"
        # redact the whole line before cutting it: the cut may run through a key
        raise ProviderStreamError(
            f"{self.name}: malformed SSE data line ({problem}): {detail(data, 200)!r}"
        )

    def _ended_early(self, what: str) -> RetryableError:
        error = ProviderStreamError(f"{self.name}: stream ended before {what}")
        return RetryableError(error, "stream ended early")


def _join_url(base: str, path: str) -> str:
    """``base`` with ``path`` appended to its path, its query (``?api-version=``) kept."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return base.rstrip("/") + path
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + path, parts.query, ""))
