"""OpenAI-compatible chat completions (OpenAI, vLLM, Ollama, llama.cpp, LM Studio...)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from promptstate.errors import ProviderStreamError
from promptstate.models.provider import ChatRequest, StreamEvent, TextDelta, UsageInfo
from promptstate.providers._http import HTTPProvider
from promptstate.providers._retry import Deadline, RetryableError
from promptstate.providers._sse import ServerSentEvent

if TYPE_CHECKING:
    from promptstate.providers._reply import Reply

__all__ = ["OpenAICompatible"]

# Mid-stream error objects whose type says "try again later".
_TRANSIENT_ERROR_WORDS = ("server_error", "overloaded", "rate_limit", "timeout")


class OpenAICompatible(HTTPProvider):
    """Any server speaking OpenAI's ``POST /chat/completions``.

    Parameters
    ----------
    name : str
        Prefix in model strings, e.g. ``"openai"`` or ``"local"``.
    base_url : str, optional
        Up to and including ``/v1``. Defaults to ``$OPENAI_BASE_URL`` or
        ``https://api.openai.com/v1``. A query string (``?api-version=...``) is kept
        and sent; credentials in it or in user info (``https://user:pw@host``, sent as
        Basic auth) are redacted, and :attr:`base_url` shows the URL without them.
    api_key : str, optional
        Sent as a bearer token. Defaults to ``$OPENAI_API_KEY``; local servers may need
        none. Surrounding whitespace (a trailing newline) is stripped. Never shown in
        reprs or error messages.
    retry : RetryPolicy
    timeouts : Timeouts
        ``connect``, ``read`` and the ``total`` deadline of a call (600 s by default).
    max_concurrency : int
        Calls the engine runs at once against this provider.
    headers : mapping, optional
        Extra headers sent with every request (e.g. ``OpenAI-Organization``).
    transport : httpx.AsyncBaseTransport or callable, optional
        Replaces httpx's network transport (e.g. ``httpx_aiohttp.AiohttpTransport``).
        Pass a zero-argument factory to get a fresh one per client, which survives
        :meth:`aclose` and a change of event loop; an instance serves one client.
    secret_headers : iterable of str, optional
        Names of more ``headers`` whose values are credentials. Values of headers whose
        name contains ``auth``, ``key``, ``token``, ``secret``, ``passw``, ``cookie`` or
        ``credential`` are treated so anyway; all are redacted from every error.
    max_event_bytes : int
        The largest SSE event (or non-streaming JSON reply) accepted, 16 MiB by default;
        a larger one fails the call with :class:`~promptstate.ProviderStreamError`.

    Notes
    -----
    Streaming asks for ``stream_options={"include_usage": True}``; a server that
    rejects it can be told otherwise with ``settings={"stream_options": None}``.
    """

    default_name = "openai"
    default_base_url = "https://api.openai.com/v1"
    base_url_env = "OPENAI_BASE_URL"
    path = "/chat/completions"
    api_key_env = "OPENAI_API_KEY"

    def _auth_headers(self, api_key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"} if api_key else {}

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = dict(request.settings)
        body["model"] = request.model
        body["messages"] = [dict(m) for m in request.messages]
        body["stream"] = request.stream
        if request.stream:
            body.setdefault("stream_options", {"include_usage": True})
        if body.get("stream_options") is None:
            # None means "send none"; the API also rejects it on non-streaming calls.
            body.pop("stream_options", None)
        return body

    def _parse_json(self, data: Any) -> list[StreamEvent]:
        if not isinstance(data, dict):
            raise ProviderStreamError(f"{self.name}: response is not a JSON object")
        choices = data.get("choices") or []
        message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
        text = message.get("content") if isinstance(message, dict) else None
        events: list[StreamEvent] = [TextDelta(text if isinstance(text, str) else "")]
        usage = _usage(data.get("usage"))
        if usage is not None:
            events.append(usage)
        return events

    async def _parse_stream(
        self, reply: Reply, deadline: Deadline
    ) -> AsyncGenerator[StreamEvent, None]:
        usage: UsageInfo | None = None
        finished = done = False

        decode = self._decode_event

        def handle(sse: ServerSentEvent, texts: list[str]) -> None:
            nonlocal usage, finished, done
            # Read on to the end of the body after [DONE]: a fully read response returns
            # its connection to the pool, an abandoned one is closed.
            if done:
                return
            if sse.data == "[DONE]":
                done = True
                return
            chunk = decode(sse.data)
            if "error" in chunk:
                raise self._stream_error(chunk["error"])
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    texts.append(content)
                if choice.get("finish_reason"):
                    finished = True
            raw_usage = chunk.get("usage")
            if raw_usage is not None:  # most chunks carry none: skip the call
                usage = _usage(raw_usage) or usage

        async with aclosing(self._sse(reply, deadline)) as batches:
            async for batch in batches:
                text, failure = self._read_batch(batch, handle)
                if text:
                    yield TextDelta(text)
                if failure is not None:
                    raise failure
        # No [DONE] is fine if the model said it finished (some local servers omit it);
        # otherwise the stream was cut short.
        if not (done or finished):
            raise self._ended_early("[DONE]")
        if usage is not None:
            yield usage

    def _stream_error(self, err: Any) -> RetryableError | ProviderStreamError:
        if isinstance(err, dict):
            message = str(err.get("message") or err)
            kind = str(err.get("type") or err.get("code") or "")
        else:
            message, kind = str(err), ""
        suffix = f" ({kind})" if kind else ""
        error = self._stream_failure(f"error event in stream: {message}{suffix}")
        if any(word in kind for word in _TRANSIENT_ERROR_WORDS):
            return self._retryable(error, kind)
        return error


def _usage(raw: Any) -> UsageInfo | None:
    if not isinstance(raw, dict):
        return None
    prompt = raw.get("prompt_tokens")
    completion = raw.get("completion_tokens")
    if prompt is None and completion is None:
        return None
    return UsageInfo(
        prompt if isinstance(prompt, int) else None,
        completion if isinstance(completion, int) else None,
    )
