"""Anthropic's Messages API (``POST /v1/messages``)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from promptstate.errors import ProviderStreamError
from promptstate.models.provider import (
    ChatRequest,
    RetryPolicy,
    StreamEvent,
    TextDelta,
    Timeouts,
    UsageInfo,
)
from promptstate.providers._http import HTTPProvider
from promptstate.providers._retry import Deadline, RetryableError
from promptstate.providers._sse import DEFAULT_MAX_EVENT_BYTES, ServerSentEvent

if TYPE_CHECKING:
    from promptstate.providers._reply import Reply
    from promptstate.providers._transport import TransportArg

__all__ = ["Anthropic"]

DEFAULT_MAX_TOKENS = 1024

# Error event types inside a 200 stream that the API would have sent as 429/5xx.
_TRANSIENT_ERROR_KINDS = frozenset(
    {"overloaded_error", "api_error", "rate_limit_error", "timeout_error"}
)


class Anthropic(HTTPProvider):
    """Anthropic's Messages API.

    System messages are joined into the top-level ``system`` field; ``max_tokens``
    defaults to 1024 because the API requires it; an OpenAI-style ``stop`` setting is
    sent as ``stop_sequences``. Other settings pass through unchanged.

    Parameters
    ----------
    name : str
        Prefix in model strings.
    base_url : str, optional
        Defaults to ``$ANTHROPIC_BASE_URL`` or ``https://api.anthropic.com``.
    api_key : str, optional
        Sent as ``x-api-key``. Defaults to ``$ANTHROPIC_API_KEY``; surrounding
        whitespace is stripped. Never shown in reprs or error messages.
    retry : RetryPolicy
    timeouts : Timeouts
        ``connect``, ``read`` and the ``total`` deadline of a call (600 s by default).
    max_concurrency : int
        Calls the engine runs at once against this provider.
    headers : mapping, optional
        Extra headers for every request (e.g. ``anthropic-beta``).
    transport : httpx.AsyncBaseTransport or callable, optional
        Replaces httpx's network transport (e.g. ``httpx_aiohttp.AiohttpTransport``).
        Pass a zero-argument factory to get a fresh one per client, which survives
        :meth:`aclose` and a change of event loop; an instance serves one client.
    anthropic_version : str
        The ``anthropic-version`` header.
    secret_headers : iterable of str, optional
        Names of more ``headers`` whose values are credentials. Values of headers whose
        name contains ``auth``, ``key``, ``token``, ``secret``, ``passw``, ``cookie`` or
        ``credential`` are treated so anyway; all are redacted from every error.
    max_event_bytes : int
        The largest SSE event (or non-streaming JSON reply) accepted, 16 MiB by default;
        a larger one fails the call with :class:`~promptstate.ProviderStreamError`.
    """

    default_name = "anthropic"
    default_base_url = "https://api.anthropic.com"
    base_url_env = "ANTHROPIC_BASE_URL"
    path = "/v1/messages"
    api_key_env = "ANTHROPIC_API_KEY"

    def __init__(
        self,
        name: str = "anthropic",
        base_url: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, safe to share
        timeouts: Timeouts = Timeouts(),  # noqa: B008
        max_concurrency: int = 16,
        headers: Mapping[str, str] | None = None,
        transport: TransportArg = None,
        anthropic_version: str = "2023-06-01",
        *,
        secret_headers: Iterable[str] = (),
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    ) -> None:
        super().__init__(
            name=name,
            base_url=base_url,
            api_key=api_key,
            retry=retry,
            timeouts=timeouts,
            max_concurrency=max_concurrency,
            headers=headers,
            transport=transport,
            secret_headers=secret_headers,
            max_event_bytes=max_event_bytes,
        )
        self.anthropic_version = anthropic_version

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.anthropic_version}
        if api_key:
            headers["x-api-key"] = api_key
        return headers

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = dict(request.settings)
        if "stop" in body:
            stop = body.pop("stop")
            if stop is not None and "stop_sequences" not in body:
                body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
        system = [m["content"] for m in request.messages if m.get("role") == "system"]
        if system and "system" not in body:
            body["system"] = "\n\n".join(system)
        body["model"] = request.model
        body["messages"] = [
            {"role": m["role"], "content": m["content"]}
            for m in request.messages
            if m.get("role") != "system"
        ]
        body.setdefault("max_tokens", DEFAULT_MAX_TOKENS)
        body["stream"] = request.stream
        return body

    def _parse_json(self, data: Any) -> list[StreamEvent]:
        if not isinstance(data, dict):
            raise ProviderStreamError(f"{self.name}: response is not a JSON object")
        blocks = data.get("content") or []
        text = "".join(
            b["text"]
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        )
        events: list[StreamEvent] = [TextDelta(text)]
        usage = data.get("usage")
        if isinstance(usage, dict):
            events.append(UsageInfo(_input_tokens(usage), _int(usage.get("output_tokens"))))
        return events

    async def _parse_stream(
        self, reply: Reply, deadline: Deadline
    ) -> AsyncGenerator[StreamEvent, None]:
        input_tokens: int | None = None
        output_tokens: int | None = None
        saw_usage = False
        stopped = False

        def handle(sse: ServerSentEvent, texts: list[str]) -> None:
            nonlocal input_tokens, output_tokens, saw_usage, stopped
            # Read on to the end of the body after message_stop so the connection goes
            # back to the pool instead of being closed.
            if stopped:
                return
            data = self._decode_event(sse.data)
            kind = data.get("type", sse.event)
            if kind == "content_block_delta":
                delta = data.get("delta")
                if isinstance(delta, dict) and delta.get("type") == "text_delta":
                    text = delta.get("text")
                    if isinstance(text, str) and text:
                        texts.append(text)
            elif kind == "message_start":
                message = data.get("message")
                usage = message.get("usage") if isinstance(message, dict) else None
                if isinstance(usage, dict):
                    saw_usage = True
                    input_tokens = _input_tokens(usage)
                    output_tokens = _int(usage.get("output_tokens"))
            elif kind == "message_delta":
                usage = data.get("usage")
                if isinstance(usage, dict):
                    saw_usage = True
                    # Cumulative counts: the last message_delta wins.
                    output_tokens = _int(usage.get("output_tokens"), output_tokens)
                    if usage.get("input_tokens") is not None:
                        input_tokens = _input_tokens(usage)
            elif kind == "message_stop":
                stopped = True
            elif kind == "error":
                raise self._stream_error(data.get("error"))
            # ping, content_block_start/stop and future event types need nothing.

        async with aclosing(self._sse(reply, deadline)) as batches:
            async for batch in batches:
                text, failure = self._read_batch(batch, handle)
                if text:
                    yield TextDelta(text)
                if failure is not None:
                    raise failure
        if not stopped:
            raise self._ended_early("message_stop")
        if saw_usage:
            yield UsageInfo(input_tokens, output_tokens)

    def _stream_error(self, err: Any) -> RetryableError | ProviderStreamError:
        kind = str(err.get("type", "")) if isinstance(err, dict) else ""
        message = str(err.get("message", err)) if isinstance(err, dict) else str(err)
        # status_code stays None: the HTTP status of this response was 200.
        error = self._stream_failure(f"error event in stream: {message} ({kind or 'unknown'})")
        return self._retryable(error, kind) if kind in _TRANSIENT_ERROR_KINDS else error


def _int(value: Any, default: int | None = None) -> int | None:
    return value if isinstance(value, int) else default


def _input_tokens(usage: Mapping[str, Any]) -> int | None:
    # Cached prompt tokens are reported apart; OpenAI's prompt_tokens includes them, so
    # add them up to keep input_tokens comparable across providers.
    base = _int(usage.get("input_tokens"))
    if base is None:
        return None
    cache_keys = ("cache_creation_input_tokens", "cache_read_input_tokens")
    return base + sum(_int(usage.get(k)) or 0 for k in cache_keys)
