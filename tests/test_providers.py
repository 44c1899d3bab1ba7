"""Providers against the fake LLM server over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import ssl
import time
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import httpx
import pytest

try:
    from fake_llm import FakeLLMServer
except ImportError:  # tests/ imported as a package
    from tests.fake_llm import FakeLLMServer

import promptstate.providers as providers
from promptstate.providers import (
    Anthropic,
    AttemptStarted,
    ChatRequest,
    OpenAICompatible,
    Provider,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
    RetryPolicy,
    StreamEvent,
    TextDelta,
    Timeouts,
    UsageInfo,
)
from promptstate.providers._reply import Reply
from promptstate.providers._retry import backoff_delay, parse_retry_after
from promptstate.providers._sse import ServerSentEvent, aiter_sse

pytestmark = pytest.mark.anyio

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05, jitter=0.0)
SECRET = "sk-test-SECRET-0123456789abcdef"
APIS = ["openai", "anthropic"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def _clean(server: FakeLLMServer) -> None:
    server.reset()
    server.latency = 0.0
    server.api_key = None


def make(api: str, server: FakeLLMServer, **kwargs: Any) -> Provider:
    kwargs.setdefault("retry", FAST)
    if api == "openai":
        return OpenAICompatible(base_url=server.openai_base_url, **kwargs)
    return Anthropic(base_url=server.base_url, **kwargs)


def req(
    content: str, model: str = "test-model", stream: bool = True, **settings: Any
) -> ChatRequest:
    return ChatRequest(model, ({"role": "user", "content": content},), settings, stream)


async def collect(provider: Provider, request: ChatRequest) -> list[StreamEvent]:
    events: list[StreamEvent] = []
    async with aclosing(provider.stream(request)) as stream:  # type: ignore[type-var]
        async for event in stream:
            events.append(event)
    return events


async def collect_until_error(
    provider: Provider, request: ChatRequest
) -> tuple[list[StreamEvent], BaseException]:
    events: list[StreamEvent] = []
    with pytest.raises(ProviderError) as info:
        async with aclosing(provider.stream(request)) as stream:  # type: ignore[type-var]
            async for event in stream:
                events.append(event)
    return events, info.value


def text_of(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def attempts_of(events: list[StreamEvent]) -> list[AttemptStarted]:
    return [e for e in events if isinstance(e, AttemptStarted)]


# -- happy paths -------------------------------------------------------------------------


async def _read_request(reader: asyncio.StreamReader) -> None:
    """Read one request (head and ``content-length`` body) off a raw test server's socket."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)


def _sse_frames(api: str, texts: list[str]) -> bytes:
    out = []
    for text in texts:
        if api == "openai":
            obj = {"choices": [{"index": 0, "delta": {"content": text}}]}
            out.append(f"data: {json.dumps(obj)}\n\n")
        else:
            obj = {"type": "content_block_delta", "delta": {"type": "text_delta", "text": text}}
            out.append(f"event: content_block_delta\ndata: {json.dumps(obj)}\n\n")
    return "".join(out).encode()


def _sse_end(api: str) -> bytes:
    if api == "openai":
        return b'data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}\n\n' + (
            b"data: [DONE]\n\n"
        )
    return b'event: message_stop\ndata: {"type": "message_stop"}\n\n'


@pytest.mark.parametrize("api", APIS)
async def test_text_streams_as_it_arrives_one_delta_per_read(api: str) -> None:
    # A server on 127.0.0.1 that sends two events, then waits until the consumer has
    # the first delta before sending the rest: streaming is shown without timing.
    gate = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"connection: close\r\n\r\n" + _sse_frames(api, ["Hello, ", "brave "])
        )
        await writer.drain()
        await gate.wait()
        writer.write(_sse_frames(api, ["new ", "w\u00f6rld"]) + _sse_end(api))
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    if api == "openai":
        provider: Provider = OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1")
    else:
        provider = Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k")
    deltas: list[str] = []
    try:
        async with aclosing(provider.stream(req("x"))) as stream:  # type: ignore[type-var]
            async for event in stream:
                if isinstance(event, TextDelta):
                    deltas.append(event.text)
                    gate.set()  # the rest is sent only now
    finally:
        await provider.aclose()
        listener.close()
    # the first delta came before the rest was sent (and a read of both events of the
    # first write is one delta, not two)
    assert deltas[0] in ("Hello, ", "Hello, brave ")
    assert "".join(deltas) == "Hello, brave new w\u00f6rld"
    assert len(deltas) >= 2


@pytest.mark.parametrize("api", APIS)
async def test_text_before_an_error_in_the_same_read_is_passed_on_and_not_retried(
    api: str,
) -> None:
    if api == "openai":
        error = b'data: {"error": {"message": "boom", "type": "server_error"}}\n\n'
    else:
        error = b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error"}}\n\n'
    requests = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        await _read_request(reader)
        writer.write(  # one write: the text and the (transient) error share a read
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"connection: close\r\n\r\n" + _sse_frames(api, ["Hello, ", "brave "]) + error
        )
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    retry = FAST
    if api == "openai":
        provider: Provider = OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1", retry=retry)
    else:
        provider = Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="k", retry=retry)
    try:
        events, exc = await collect_until_error(provider, req("x"))
    finally:
        await provider.aclose()
        listener.close()
    assert text_of(events) == "Hello, brave "  # received before the error: kept
    assert isinstance(exc, ProviderStreamError)
    assert requests == 1  # text was already out: a retry would repeat it


@pytest.mark.parametrize("api", APIS)
async def test_stream_text_is_exact_and_usage_parsed(api: str, server: FakeLLMServer) -> None:
    content = "  Hello,  brave\nnew wörld! \t"
    provider = make(api, server)
    try:
        events = await collect(provider, req(content))
    finally:
        await provider.aclose()
    assert events[0] == AttemptStarted(1, None)
    assert text_of(events) == content
    assert sum(isinstance(e, TextDelta) for e in events) >= 1
    assert events[-1] == UsageInfo(input_tokens=4, output_tokens=4)
    assert [type(e) for e in events].count(UsageInfo) == 1


@pytest.mark.parametrize("api", APIS)
async def test_non_streaming_request(api: str, server: FakeLLMServer) -> None:
    async with make(api, server) as provider:
        events = await collect(provider, req("one two three", stream=False))
    assert events == [AttemptStarted(1, None), TextDelta("one two three"), UsageInfo(3, 3)]
    body = server.requests[-1].body
    assert body["stream"] is False
    assert "stream_options" not in body


async def test_openai_body_and_headers(server: FakeLLMServer) -> None:
    provider = OpenAICompatible(
        base_url=server.openai_base_url, api_key="k-123", headers={"x-extra": "1"}, retry=FAST
    )
    request = ChatRequest(
        "gpt-test",
        ({"role": "system", "content": "Be terse."}, {"role": "user", "content": "a b c d"}),
        {"temperature": 0.25, "top_p": 0.9, "max_tokens": 2, "stop": ["\n"], "seed": 7},
    )
    async with provider:
        events = await collect(provider, request)
    assert text_of(events) == "a b "  # max_tokens=2 honoured by the fake
    seen = server.requests[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.body == {
        "temperature": 0.25,
        "top_p": 0.9,
        "max_tokens": 2,
        "stop": ["\n"],
        "seed": 7,
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "a b c d"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert seen.headers["authorization"] == "Bearer k-123"
    assert seen.headers["x-extra"] == "1"
    assert seen.headers["accept"] == "text/event-stream"


async def test_anthropic_body_and_headers(server: FakeLLMServer) -> None:
    provider = Anthropic(base_url=server.base_url, api_key="k-456", retry=FAST)
    request = ChatRequest(
        "claude-test",
        (
            {"role": "system", "content": "Be terse."},
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "x y z"},
        ),
        {"temperature": 0.5, "stop": "END", "top_k": 5},
    )
    async with provider:
        events = await collect(provider, request)
    assert text_of(events) == "x y z"
    # system words count as input, like the real API
    assert events[-1] == UsageInfo(input_tokens=4 + 1 + 1 + 3, output_tokens=3)
    seen = server.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.body == {
        "temperature": 0.5,
        "top_k": 5,
        "stop_sequences": ["END"],
        "system": "Be terse.\n\nBe kind.",
        "model": "claude-test",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "x y z"},
        ],
        "max_tokens": 1024,
        "stream": True,
    }
    assert seen.headers["x-api-key"] == "k-456"
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers


async def test_settings_max_tokens_overrides_anthropic_default(server: FakeLLMServer) -> None:
    async with make("anthropic", server) as provider:
        events = await collect(provider, req("a b c", max_tokens=1))
    assert text_of(events) == "a "
    assert server.requests[-1].body["max_tokens"] == 1


async def test_openai_stream_options_can_be_turned_off(server: FakeLLMServer) -> None:
    async with make("openai", server) as provider:
        events = await collect(provider, req("a b", stream_options=None))
    assert "stream_options" not in server.requests[-1].body
    assert text_of(events) == "a b"
    assert not any(isinstance(e, UsageInfo) for e in events)  # the API sent none


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("stream", [True, False])
async def test_no_usage(api: str, stream: bool, server: FakeLLMServer) -> None:
    async with make(api, server) as provider:
        events = await collect(provider, req("a b c", model="fault:no_usage", stream=stream))
    assert text_of(events) == "a b c"
    assert not any(isinstance(e, UsageInfo) for e in events)


async def test_env_defaults(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "env-key-1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key-2")
    async with OpenAICompatible() as openai, Anthropic() as anthropic:
        assert text_of(await collect(openai, req("hi"))) == "hi"
        assert server.requests[-1].headers["authorization"] == "Bearer env-key-1"
        assert text_of(await collect(anthropic, req("hi"))) == "hi"
        assert server.requests[-1].headers["x-api-key"] == "env-key-2"
    assert openai.name == "openai" and anthropic.name == "anthropic"
    assert openai.max_concurrency == 16


async def test_concurrent_streams_share_one_client(server: FakeLLMServer) -> None:
    async with make("openai", server, max_concurrency=50) as provider:
        results = await asyncio.gather(
            *(collect(provider, req(f"message number {i}")) for i in range(50))
        )
        client = provider._client  # type: ignore[attr-defined]
        assert text_of(await collect(provider, req("again"))) == "again"
        assert provider._client is client  # type: ignore[attr-defined]
    assert [text_of(r) for r in results] == [f"message number {i}" for i in range(50)]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_new_event_loop_gets_a_new_client(server: FakeLLMServer) -> None:
    # asyncio.run per call (scripts) must not reuse sockets bound to a closed loop.
    provider = make("openai", server)
    for _ in range(2):
        assert text_of(asyncio.run(collect(provider, req("loop")))) == "loop"
    asyncio.run(provider.aclose())
    # The first loop's idle socket could not be closed from the second loop: let the
    # garbage collector warn about it here rather than in a later test.
    gc.collect()


async def test_transport_factory_gives_each_client_a_fresh_transport(
    server: FakeLLMServer,
) -> None:
    made: list[httpx.AsyncBaseTransport] = []

    def factory() -> httpx.AsyncBaseTransport:
        made.append(httpx.AsyncHTTPTransport())
        return made[-1]

    provider = make("openai", server, transport=factory)
    for _ in range(2):
        assert text_of(await collect(provider, req("hi"))) == "hi"
        await provider.aclose()  # closes the client and its transport
    assert len(made) == 2


async def test_aiohttp_transport(server: FakeLLMServer) -> None:
    httpx_aiohttp = pytest.importorskip("httpx_aiohttp")
    fast_read = Timeouts(connect=2, read=0.3)
    async with make("anthropic", server, transport=httpx_aiohttp.AiohttpTransport) as provider:
        assert text_of(await collect(provider, req("via aiohttp"))) == "via aiohttp"
        _, exc = await collect_until_error(provider, req("a b c", model="fault:drop_after=1"))
        assert isinstance(exc, ProviderStreamError)
    async with make(
        "openai", server, transport=httpx_aiohttp.AiohttpTransport, timeouts=fast_read
    ) as provider:
        _, exc = await collect_until_error(provider, req("a b c", model="fault:stall=3"))
        assert isinstance(exc, ProviderTimeoutError)


# -- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_429_then_ok_is_retried(api: str, server: FakeLLMServer) -> None:
    server.script(["429", "ok"])
    async with make(api, server) as provider:
        events = await collect(provider, req("fine now"))
    assert attempts_of(events) == [AttemptStarted(1, None), AttemptStarted(2, "HTTP 429", 0.0)]
    assert text_of(events) == "fine now"
    assert [r.status for r in server.requests] == [429, 200]


async def test_retry_after_is_honoured(server: FakeLLMServer) -> None:
    server.script(["429:retry_after=1", "ok"])
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=5.0, jitter=0.0)
    async with make("openai", server, retry=policy) as provider:
        started = time.monotonic()
        events = await collect(provider, req("patience"))
        elapsed = time.monotonic() - started
    assert attempts_of(events)[1] == AttemptStarted(2, "HTTP 429", 1.0)
    assert elapsed >= 0.95
    assert text_of(events) == "patience"


async def test_retry_after_is_capped_by_max_delay(server: FakeLLMServer) -> None:
    server.script(["429:retry_after=100", "ok"])
    async with make("anthropic", server) as provider:
        events = await collect(provider, req("soon"))
    assert attempts_of(events)[1] == AttemptStarted(2, "HTTP 429", FAST.max_delay)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("status", ["500", "503", "408"])
async def test_server_errors_are_retried(api: str, status: str, server: FakeLLMServer) -> None:
    server.script([status, status, "ok"])
    async with make(api, server) as provider:
        events = await collect(provider, req("third time"))
    assert [a.reason for a in attempts_of(events)] == [None, f"HTTP {status}", f"HTTP {status}"]
    assert text_of(events) == "third time"


@pytest.mark.parametrize("api", APIS)
async def test_400_is_not_retried(api: str, server: FakeLLMServer) -> None:
    async with make(api, server) as provider:
        events, exc = await collect_until_error(provider, req("bad", model="fault:400"))
    assert isinstance(exc, ProviderHTTPError)
    assert exc.status_code == 400
    assert exc.attempts == 1
    assert "HTTP 400" in str(exc)
    assert "Invalid request (fake 400 from fake_llm)." in str(exc)  # the API's own words
    assert "invalid_request_error" in str(exc)
    assert len(server.requests) == 1
    assert attempts_of(events) == [AttemptStarted(1, None)]


@pytest.mark.parametrize("api", APIS)
async def test_retries_exhausted(api: str, server: FakeLLMServer) -> None:
    async with make(api, server) as provider:
        events, exc = await collect_until_error(provider, req("never", model="fault:500"))
    assert isinstance(exc, ProviderHTTPError)
    assert exc.status_code == 500
    assert exc.attempts == 3
    assert "after 3 attempts" in str(exc)
    assert len(server.requests) == 3
    assert [a.attempt for a in attempts_of(events)] == [1, 2, 3]


async def test_model_string_can_fail_n_times_then_succeed(server: FakeLLMServer) -> None:
    # Engine tests can only choose the model string: "fault:503*2" fails twice.
    async with make("openai", server) as provider:
        events = await collect(provider, req("at last", model="fault:503*2"))
    assert len(attempts_of(events)) == 3
    assert text_of(events) == "at last"


async def test_connection_refused(server: FakeLLMServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1", retry=FAST)
    async with provider:
        events, exc = await collect_until_error(provider, req("anyone?"))
    assert isinstance(exc, ProviderConnectionError)
    assert exc.attempts == 3
    assert [a.reason for a in attempts_of(events)][1:] == ["connection error"] * 2
    assert f"127.0.0.1:{port}" in str(exc)


# -- broken streams ----------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_drop_mid_stream_after_text(api: str, server: FakeLLMServer) -> None:
    async with make(api, server) as provider:
        events, exc = await collect_until_error(
            provider, req("one two three four", model="fault:drop_after=2")
        )
    assert isinstance(exc, ProviderStreamError)
    assert text_of(events) == "one two "  # the partial text reached the caller
    assert "dropped" in str(exc)
    assert len(server.requests) == 1  # text was out: no retry


@pytest.mark.parametrize("api", APIS)
async def test_drop_before_any_text_is_retried(api: str, server: FakeLLMServer) -> None:
    server.script(["drop_after=0", "ok"])
    async with make(api, server) as provider:
        events = await collect(provider, req("second try"))
    assert attempts_of(events)[1].reason == "stream dropped"
    assert text_of(events) == "second try"


@pytest.mark.parametrize("api", APIS)
async def test_malformed_line(api: str, server: FakeLLMServer) -> None:
    async with make(api, server) as provider:
        events, exc = await collect_until_error(provider, req("a b c", model="fault:malformed"))
    assert isinstance(exc, ProviderStreamError)
    assert "malformed SSE data line (invalid JSON)" in str(exc)
    assert text_of(events) == "a "
    assert len(server.requests) == 1


@pytest.mark.parametrize("api", APIS)
async def test_error_event_after_text(api: str, server: FakeLLMServer) -> None:
    async with make(api, server) as provider:
        events, exc = await collect_until_error(provider, req("a b c", model="fault:error_event"))
    assert isinstance(exc, ProviderStreamError)
    assert "error event in stream" in str(exc)
    assert text_of(events) == "a "


async def test_anthropic_overloaded_event_before_text_is_retried(server: FakeLLMServer) -> None:
    server.script(["error_event", "ok"])
    async with make("anthropic", server) as provider:
        events = await collect(provider, req(""))  # empty reply: the error comes before text
    assert attempts_of(events)[1].reason == "overloaded_error"


@pytest.mark.parametrize("api", APIS)
async def test_stall_past_read_timeout(api: str, server: FakeLLMServer) -> None:
    provider = make(api, server, timeouts=Timeouts(connect=2, read=0.3))
    started = time.monotonic()
    async with provider:
        events, exc = await collect_until_error(provider, req("a b c", model="fault:stall=5"))
    assert isinstance(exc, ProviderTimeoutError)
    assert time.monotonic() - started < 2
    assert text_of(events) == "a "
    assert "0.3s" in str(exc)
    assert server.wait_until(lambda: server.requests[-1].disconnected, 2)


async def test_slow_first_byte_timeout_is_retried(server: FakeLLMServer) -> None:
    server.script(["slow_first_byte=3", "ok"])
    provider = make("openai", server, timeouts=Timeouts(connect=2, read=0.3))
    async with provider:
        events = await collect(provider, req("late"))
    assert attempts_of(events)[1].reason == "timeout"
    assert text_of(events) == "late"


# -- cancellation ------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_cancelling_the_consumer_closes_the_connection(
    api: str, server: FakeLLMServer
) -> None:
    first_text = asyncio.Event()

    async def consume(provider: Provider) -> None:
        async for event in provider.stream(req("x", model="fault:words=200,drip=0.05")):
            if isinstance(event, TextDelta):
                first_text.set()

    async with make(api, server) as provider:
        task = asyncio.create_task(consume(provider))
        await asyncio.wait_for(first_text.wait(), 5)
        cancelled_at = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.to_thread(server.wait_until, lambda: server.requests[-1].disconnected, 2)
        assert server.requests[-1].disconnected
        assert not server.requests[-1].completed
        assert time.monotonic() - cancelled_at < 1.0
        # The provider is still usable afterwards.
        assert text_of(await collect(provider, req("still here"))) == "still here"


async def test_closing_the_stream_early_closes_the_connection(server: FakeLLMServer) -> None:
    async with make("openai", server) as provider:
        async with aclosing(  # type: ignore[type-var]
            provider.stream(req("x", model="fault:words=200,drip=0.05"))
        ) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    break
        await asyncio.to_thread(server.wait_until, lambda: server.requests[-1].disconnected, 2)
    assert server.requests[-1].disconnected


# -- secrets -----------------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_api_key_never_leaks(
    api: str, server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.api_key = "the-right-key"  # the fake's 401 repeats the wrong key it was given
    caplog.set_level(logging.DEBUG)
    provider = make(api, server, api_key=SECRET)
    async with provider:
        _, exc = await collect_until_error(provider, req("hi"))
    assert isinstance(exc, ProviderHTTPError)
    assert exc.status_code == 401
    assert "[redacted]" in str(exc)  # the server's message, redacted
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dead = OpenAICompatible(base_url=f"http://127.0.0.1:{port}/v1", api_key=SECRET, retry=FAST)
    async with dead:
        _, exc2 = await collect_until_error(dead, req("hi"))
    texts = [
        str(exc),
        repr(exc),
        "".join(traceback.format_exception(exc)),
        str(exc2),
        "".join(traceback.format_exception(exc2)),
        repr(provider),
        str(provider),
        repr(vars(provider)),
        repr(dead),
        caplog.text,
    ]
    for text in texts:
        assert SECRET not in text
    sent = server.requests[-1].headers  # the key did go out, in its header
    assert sent.get("authorization" if api == "openai" else "x-api-key", "").endswith(SECRET)
    assert repr(provider).endswith(f"(name={api!r}, base_url={provider.base_url!r})")  # type: ignore[attr-defined]


# -- pieces ------------------------------------------------------------------------------


def test_public_names() -> None:
    assert providers.__all__ == sorted(providers.__all__)
    for name in providers.__all__:
        assert hasattr(providers, name)
    assert issubclass(ProviderHTTPError, ProviderError)


def test_parse_retry_after() -> None:
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after": "0.5"}) == 0.5
    assert parse_retry_after({"retry-after": "-3"}) == 0.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480) == 10
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_delay() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=0.25)
    assert backoff_delay(policy, 1, rand=lambda: 0.5) == 1.0
    assert backoff_delay(policy, 2, rand=lambda: 0.0) == 1.5
    assert backoff_delay(policy, 2, rand=lambda: 1.0) == 2.5
    assert backoff_delay(policy, 10, rand=lambda: 1.0) == 5.0
    assert backoff_delay(policy, 1, retry_after=3.0) == 3.0
    assert backoff_delay(policy, 1, retry_after=60.0) == 5.0


async def test_sse_parser() -> None:
    async def lines(*items: str) -> AsyncIterator[str]:
        for item in items:
            yield item

    raw = [
        ": comment",
        "event: a",
        "data: one",
        "data:two",
        "id: 3",
        "",
        "",
        "data: x",
        "",
        "data: cut",
    ]
    events = [e async for e in aiter_sse(lines(*raw))]
    assert events == [ServerSentEvent("a", "one\ntwo"), ServerSentEvent("message", "x")]


class _Reads(Reply):
    """A reply whose body arrives in the given reads, one per ``read()``."""

    def __init__(self, reads: list[bytes]) -> None:
        self.status, self.reason, self.headers, self.url = 200, "OK", {}, "http://127.0.0.1/"
        self._reads = list(reads)

    @property
    def charset(self) -> str | None:
        return "utf-8"

    async def read(self) -> bytes:
        return self._reads.pop(0) if self._reads else b""

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize("api", APIS)
async def test_the_events_of_one_read_become_exactly_one_delta(api: str) -> None:
    from promptstate.providers._retry import Deadline

    reads = [_sse_frames(api, ["a", "b", "c"]), _sse_frames(api, ["d"]) + _sse_end(api)]
    if api == "openai":
        provider: Any = OpenAICompatible(base_url="http://127.0.0.1:9/v1")
    else:
        provider = Anthropic(base_url="http://127.0.0.1:9", api_key="k")
    try:
        events = [e async for e in provider._parse_stream(_Reads(reads), Deadline(30, "p"))]
    finally:
        await provider.aclose()
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["abc", "d"]


@pytest.mark.parametrize("trusted", [False, True])
async def test_an_https_provider_verifies_the_server_against_certifi(
    trusted: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A TLS server on 127.0.0.1 with a certificate from a throwaway CA: refused before
    # any request goes out, unless the bundle the client loads (certifi's) holds the CA.
    import certifi
    import trustme

    from promptstate.providers._transport import tls_context

    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    requests = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        requests += 1
        await _read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"connection: close\r\n\r\n" + _sse_frames("openai", ["Hello"]) + _sse_end("openai")
        )
        await writer.drain()
        writer.close()

    if trusted:
        monkeypatch.setattr(certifi, "where", lambda: str(bundle))
    tls_context.cache_clear()  # the context is loaded once per process: load it again
    listener = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_tls)
    port = listener.sockets[0].getsockname()[1]
    provider = OpenAICompatible(base_url=f"https://127.0.0.1:{port}/v1", api_key="k", retry=FAST)
    try:
        if trusted:
            assert text_of(await collect(provider, req("x"))) == "Hello"
            assert requests == 1
        else:
            events, exc = await collect_until_error(provider, req("x"))
            assert isinstance(exc, ProviderConnectionError)
            assert "certificate" in str(exc).lower()
            assert requests == 0  # no request (and no key) went to the unverified server
            assert sum(isinstance(e, AttemptStarted) for e in events) == 1  # not retried
    finally:
        await provider.aclose()
        listener.close()
        await listener.wait_closed()
        tls_context.cache_clear()  # the next client loads the real bundle
