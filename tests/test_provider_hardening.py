"""Providers against hostile servers: echoed secrets, replies without end, giant events.

Every test here failed before the hardening: keys leaked through cuts made before
redaction, through URLs, headers and malformed status lines; servers that never stop
sending held a run open forever; one big SSE event cost quadratic time; bad settings
crashed inside httpx.
"""

from __future__ import annotations

import base64
import itertools
import logging
import math
import traceback
from collections.abc import Iterator
from contextlib import aclosing
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

import promptstate.errors as errors
from promptstate.models import provider as _base
from promptstate.models import redact as redaction
from promptstate.providers import (
    Anthropic,
    AttemptStarted,
    ChatRequest,
    OpenAICompatible,
    Provider,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
    RetryPolicy,
    StreamEvent,
    TextDelta,
    Timeouts,
    _sse,
)
from promptstate.providers.registry import ProviderRegistry

try:
    from fake_llm import FakeLLMServer
except ImportError:  # tests/ imported as a package
    from tests.fake_llm import FakeLLMServer

pytestmark = pytest.mark.anyio

# Random-looking, so none of its 6-character windows occurs in ordinary text.
KEY = "sk-Zq8vW2mXr7Kp4Ld9Tn3Hy6Qw"
ONCE = RetryPolicy(max_attempts=1)
APIS = ["openai", "anthropic"]
# Header name and prefix each API's fake echoes before the key (see tests/fake_llm.py).
ECHO_PREFIX = {"openai": " you sent authorization: Bearer ", "anthropic": " you sent x-api-key: "}


def short() -> Timeouts:
    """A small total deadline so never-ending servers end quickly (no time is asserted)."""
    return Timeouts(connect=5, read=5, total=1.5)


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
    kwargs.setdefault("retry", ONCE)
    kwargs.setdefault("api_key", KEY)
    if api == "openai":
        kwargs.setdefault("base_url", server.openai_base_url)
        return OpenAICompatible(**kwargs)
    kwargs.setdefault("base_url", server.base_url)
    return Anthropic(**kwargs)


def req(content: str = "a b c", model: str = "m", **settings: Any) -> ChatRequest:
    return ChatRequest(model, ({"role": "user", "content": content},), settings)


async def run(provider: Provider, request: ChatRequest) -> tuple[list[StreamEvent], ProviderError]:
    events: list[StreamEvent] = []
    with pytest.raises(ProviderError) as info:
        async with provider, aclosing(provider.stream(request)) as stream:  # type: ignore[type-var]
            async for event in stream:
                events.append(event)
    return events, info.value


def texts_of(*things: object) -> list[str]:
    """Every text a caller can get out of these: str, repr, traceback, args, chain."""
    out: list[str] = []
    for thing in things:
        if isinstance(thing, BaseException):
            out += [str(thing), repr(thing), "".join(traceback.format_exception(thing))]
            seen: set[int] = set()
            stack: list[BaseException] = [thing]
            while stack:  # every cause and context, shown in tracebacks or not
                exc = stack.pop()
                if id(exc) in seen:
                    continue
                seen.add(id(exc))
                out += [str(exc), repr(exc), repr(exc.args)]
                stack += [e for e in (exc.__cause__, exc.__context__) if e is not None]
        else:
            out.append(thing if isinstance(thing, str) else repr(thing))
    return out


def assert_hidden(secret: str, *things: object) -> None:
    """Neither ``secret`` nor any 6-character piece of it (a prefix left by a cut) shows."""
    windows = {secret[i : i + 6] for i in range(len(secret) - 5)}
    for text in texts_of(*things):
        for window in windows:
            assert window not in text, f"{window!r} of the secret leaked in: {text[:2000]}"


# -- secrets echoed by the server ---------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize(
    ("where", "cut"),
    [("body", 500), ("json", 200 - len('{"choices": [')), ("sse", 200 - len('{"oops": '))],
)
async def test_echoed_key_cut_short_leaves_no_prefix(
    api: str, where: str, cut: int, server: FakeLLMServer
) -> None:
    # pad so that the key starts 10 characters before where the message is cut
    pad = cut - 10 - len(ECHO_PREFIX[api])
    events, exc = await run(make(api, server), req(model=f"m+fault:echo={where},pad={pad}"))
    assert isinstance(exc, ProviderHTTPError if where == "body" else ProviderStreamError)
    assert "[redact" in str(exc)  # the echo is there, redacted
    assert_hidden(KEY, exc, events)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("transport", ["default", "httpx"])
@pytest.mark.parametrize("where", ["status", "header"])
async def test_key_echoed_in_a_malformed_status_or_header_line(
    api: str, transport: str, where: str, server: FakeLLMServer
) -> None:
    chosen = httpx.AsyncHTTPTransport if transport == "httpx" else None
    provider = make(api, server, transport=chosen)
    events, exc = await run(provider, req(model=f"m+fault:echo={where}"))
    # a typed error (aiohttp's own ClientResponseError used to escape), key hidden
    assert isinstance(exc, errors.ProviderConnectionError)
    assert_hidden(KEY, exc, events)


async def test_key_echoed_in_a_retryable_error_event_type(server: FakeLLMServer) -> None:
    # no text yet, so the error event's type (quoting the key) becomes a retry reason
    provider = make("openai", server, retry=RetryPolicy(max_attempts=2, base_delay=0))
    events, exc = await run(provider, req("", model="m+fault:echo=event"))
    reasons = [e.reason for e in events if isinstance(e, AttemptStarted)]
    assert len(reasons) == 2 and reasons[1] is not None and "server_error" in reasons[1]
    assert_hidden(KEY, exc, events, reasons)


async def test_key_with_trailing_newline_works_and_is_redacted(server: FakeLLMServer) -> None:
    provider = make("openai", server, api_key=KEY + "\n")
    async with provider, aclosing(provider.stream(req("fine"))) as stream:  # type: ignore[type-var]
        text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
    assert text == "fine"
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    server.api_key = "the-right-key"  # the fake's 401 repeats the key it was given
    events, exc = await run(make("openai", server, api_key=KEY + "\n"), req())
    assert exc.status_code == 401
    assert_hidden(KEY, exc, events, provider)


def test_key_with_whitespace_inside_fails_clearly_without_showing_it() -> None:
    with pytest.raises(errors.ProviderConfigError, match="api_key") as info:
        OpenAICompatible(base_url="http://127.0.0.1:9/v1", api_key=KEY[:10] + "\n" + KEY[10:])
    assert_hidden(KEY[10:], info.value)


@pytest.mark.parametrize(
    "headers",
    [{"api-key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"X-Goog-Api-Key": KEY}],
    ids=["azure-api-key", "authorization", "x-goog-api-key"],
)
async def test_key_passed_in_headers_is_redacted(
    headers: dict[str, str], server: FakeLLMServer
) -> None:
    provider = make("openai", server, api_key=None, headers=headers)
    events, exc = await run(provider, req(model="m+fault:echo=body"))
    assert exc.status_code == 401 and "[redacted]" in str(exc)
    sent = server.requests[-1].headers
    assert any(KEY in value for value in sent.values())  # it did go out
    assert_hidden(KEY, exc, events, provider, vars(provider))


def test_secret_headers_names_more_headers_to_redact() -> None:
    value = "custom-Vt5Rb8Nc2Jx6Pf4"
    OpenAICompatible(
        base_url="http://127.0.0.1:9/v1",
        headers={"X-Custom-Auth-Thing": "Kq3Zm9Wd1Yl7Ts5", "X-Org": value},
        secret_headers=["x-org"],
    )
    assert redaction.redact(f"org {value} and Kq3Zm9Wd1Yl7Ts5") == "org [redacted] and [redacted]"
    assert value in ProviderRegistry().secrets()


@pytest.mark.parametrize("transport", ["default", "httpx"])
async def test_key_in_the_base_url_query(
    server: FakeLLMServer, caplog: pytest.LogCaptureFixture, transport: str
) -> None:
    # e.g. Azure-style ?api-version=... or Gemini-style ?key=...
    caplog.set_level(logging.DEBUG)
    # default: the aiohttp transport called directly; httpx: through httpx's client,
    # which logs every request's URL
    extra = {"transport": httpx.AsyncHTTPTransport} if transport == "httpx" else {}
    provider = make(
        "openai", server, api_key=None, base_url=f"{server.openai_base_url}?key={KEY}", **extra
    )
    events, exc = await run(provider, req(model="m+fault:echo=body"))
    seen = server.requests[-1]
    # the path goes before the query, which is kept
    assert (seen.path, seen.query) == ("/v1/chat/completions", f"key={KEY}")
    assert exc.status_code == 401 and "[redacted]" in str(exc)
    if transport == "httpx":
        assert "HTTP Request: POST" in caplog.text  # httpx logs the URL: redacted
    assert_hidden(KEY, exc, events, provider, vars(provider), provider.base_url, caplog.text)  # type: ignore[attr-defined]


async def test_credentials_in_the_base_url(server: FakeLLMServer) -> None:
    url = server.openai_base_url.replace("http://", f"http://proxyuser:{KEY}@")
    provider = make("openai", server, api_key=None, base_url=url)
    events, exc = await run(provider, req(model="m+fault:echo=body"))
    basic = base64.b64encode(f"proxyuser:{KEY}".encode()).decode()
    assert server.requests[-1].headers["authorization"] == f"Basic {basic}"
    assert exc.status_code == 401
    for secret in (KEY, basic):
        assert_hidden(secret, exc, events, provider, vars(provider))


async def test_repr_never_shows_a_key(server: FakeLLMServer) -> None:
    provider = make("anthropic", server, headers={"x-api-key-2": "second-Hd7Gm2Kx9"})
    for text in (repr(provider), str(provider), repr(vars(provider))):
        assert KEY not in text and "second-Hd7Gm2Kx9" not in text
    assert KEY in ProviderRegistry([provider]).secrets()


# -- servers that never stop sending ------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("fault", ["pings=0.05", "header_drip=0.02", "endless,drip=0.005"])
async def test_never_ending_server_hits_the_total_deadline(
    api: str, fault: str, server: FakeLLMServer
) -> None:
    # every byte resets the 5 s read timeout: only the 1.5 s total deadline ends these
    provider = make(api, server, timeouts=short(), retry=RetryPolicy(max_attempts=3))
    events, exc = await run(provider, req(model=f"m+fault:{fault}"))
    assert isinstance(exc, ProviderTimeoutError)
    assert "exceeded total deadline of 1.5s" in str(exc)
    assert server.wait_until(lambda: server.requests[-1].disconnected, 5)
    if fault.startswith("endless"):
        assert len([e for e in events if isinstance(e, TextDelta)]) > 1


async def test_total_deadline_covers_retries_and_backoff(server: FakeLLMServer) -> None:
    # a 5 s Retry-After cannot fit in a 1.5 s budget: give up now with the real reason
    policy = RetryPolicy(max_attempts=3, max_delay=10)
    provider = make("openai", server, timeouts=short(), retry=policy)
    events, exc = await run(provider, req(model="m+fault:429:retry_after=5"))
    assert isinstance(exc, ProviderHTTPError) and exc.status_code == 429
    assert len(server.requests) == 1
    assert [e.attempt for e in events if isinstance(e, AttemptStarted)] == [1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"total": math.nan},
        {"total": -1},
        {"total": 0},
        {"total": math.inf},
        {"read": "5"},
        {"connect": None},
        {"read": True},
    ],
)
def test_timeouts_are_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.ProviderConfigError, match="Timeouts"):
        Timeouts(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"base_delay": math.nan},
        {"base_delay": -0.1},
        {"max_delay": math.inf},
        {"jitter": 1.5},
        {"jitter": "0.1"},
    ],
)
def test_retry_policy_is_validated(kwargs: dict[str, Any]) -> None:
    with pytest.raises(errors.ProviderConfigError, match="RetryPolicy"):
        RetryPolicy(**kwargs)


def test_timeouts_default_total_is_finite() -> None:
    assert Timeouts().total == 600.0
    assert Timeouts(total=30).total == 30


# -- one giant SSE event ------------------------------------------------------------------


@pytest.mark.parametrize("api", APIS)
async def test_one_giant_event_is_delivered_up_to_the_cap(api: str, server: FakeLLMServer) -> None:
    mib = 1024 * 1024
    provider = make(api, server, max_event_bytes=4 * mib)
    request = req("end", model=f"m+fault:giant_event={3 * mib}")
    async with provider, aclosing(provider.stream(request)) as stream:  # type: ignore[type-var]
        text = "".join([e.text async for e in stream if isinstance(e, TextDelta)])
    assert text == "x" * (3 * mib) + "end"
    events, exc = await run(provider, req(model=f"m+fault:giant_event={5 * mib}"))
    assert isinstance(exc, ProviderStreamError)
    assert f"max_event_bytes={4 * mib}" in str(exc)
    assert not [e for e in events if isinstance(e, TextDelta)]


def _one_event(size: int) -> bytes:
    return b"event: big\ndata: " + b"y" * size + b"\n\n"


@pytest.mark.parametrize(("size", "chunk"), [(16 * 1024 * 1024, 64 * 1024), (256 * 1024, 1)])
def test_sse_decoder_work_is_linear(size: int, chunk: int) -> None:
    decoder = _sse.SSEDecoder(max_event_bytes=32 * 1024 * 1024)
    raw = _one_event(size)
    events = []
    for i in range(0, len(raw), chunk):
        events += decoder.feed(raw[i : i + chunk])
    assert events == [_sse.ServerSentEvent("big", "y" * size)]
    # bytes scanned or copied: a small multiple of the input, whatever the chunking
    # (re-joining the leftover with every chunk made this ~len(raw) ** 2 / chunk)
    assert decoder.bytes_processed <= 8 * len(raw)


def test_sse_decoder_caps_one_event() -> None:
    decoder = _sse.SSEDecoder(max_event_bytes=1000)
    assert decoder.feed(_one_event(900)) == [_sse.ServerSentEvent("big", "y" * 900)]
    with pytest.raises(ProviderStreamError, match="max_event_bytes=1000"):
        for _ in range(100):  # a line that never ends
            decoder.feed(b"data: " + b"z" * 100)
    # many data lines of one event count together
    decoder = _sse.SSEDecoder(max_event_bytes=1000)
    with pytest.raises(ProviderStreamError, match="max_event_bytes"):
        decoder.feed(b"data: abcdefghij\n" * 200)
    with pytest.raises(errors.ProviderConfigError):
        _sse.SSEDecoder(max_event_bytes=0)


_SSE_STREAM = (
    b": comment\r\nevent: a\r\ndata: one\rdata:two\nid: 3\n\n\r\n"
    b"data: caf\xc3\xa9 \xe2\x82\xac\r\n\r\ndata: x\r\rdata: cut"
)


@given(st.lists(st.integers(min_value=0, max_value=len(_SSE_STREAM)), max_size=12))
def test_sse_decoder_is_independent_of_chunking(cuts: list[int]) -> None:
    bounds = [0, *sorted(cuts), len(_SSE_STREAM)]
    decoder = _sse.SSEDecoder()
    events = []
    for start, end in itertools.pairwise(bounds):
        events += decoder.feed(_SSE_STREAM[start:end])
    assert events == [
        _sse.ServerSentEvent("a", "one\ntwo"),
        _sse.ServerSentEvent("message", "café €"),
        _sse.ServerSentEvent("message", "x"),
    ]
    assert decoder.bytes_processed <= 8 * len(_SSE_STREAM)


def _reference_sse(raw: bytes) -> list[tuple[str, str]]:
    """The WHATWG rules applied to a whole stream at once, line by line (the oracle)."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    lines = text.split(b"\n")[:-1]  # the last piece has no line end yet: not a line
    out: list[tuple[str, str]] = []
    event, data = "", []
    for line in lines:
        if not line:
            if data:
                out.append((event or "message", "\n".join(data)))
            event, data = "", []
            continue
        if line.startswith(b":"):
            continue
        name, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if name == b"data":
            data.append(value.decode())
        elif name == b"event":
            event = value.decode()
    return out


_SSE_TOKENS = [b"data:", b"data: ", b"event: e", b"event:", b": c", b"x", b" ", b"\xc3\xa9"]
_SSE_ENDS = [b"\n", b"\r", b"\r\n", b"\n\n", b"\r\n\r\n"]


@given(
    st.lists(
        st.tuples(st.lists(st.sampled_from(_SSE_TOKENS), max_size=4), st.sampled_from(_SSE_ENDS)),
        max_size=12,
    ),
    st.lists(st.integers(min_value=0, max_value=200), max_size=8),
)
def test_sse_decoder_matches_the_line_by_line_rules(
    lines: list[tuple[list[bytes], bytes]], cuts: list[int]
) -> None:
    # the whole-event fast path ("data:" events split on blank lines) and the line path
    # agree with the plain rules, for any mix of fields, line ends and chunk boundaries
    raw = b"".join(b"".join(tokens) + end for tokens, end in lines)
    bounds = [0, *sorted(c for c in cuts if c <= len(raw)), len(raw)]
    decoder = _sse.SSEDecoder()
    events = []
    for start, end in itertools.pairwise(bounds):
        events += decoder.feed(raw[start:end])
    assert [tuple(e) for e in events] == _reference_sse(raw)


# -- bad request input --------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"x": object()},
        {"temperature": math.nan},
        {"temperature": math.inf},
        {"stop": ["a", math.nan]},
        {"logit_bias": {"1": -math.inf}},
        {3: 1},
        {"": 1},
    ],
)
def test_validate_settings_rejects_what_json_cannot_send(settings: dict[Any, Any]) -> None:
    with pytest.raises(errors.ProviderConfigError):
        _base.validate_settings(settings)
    with pytest.raises(errors.ProviderConfigError):  # a provider fed directly checks too
        ChatRequest("m", ({"role": "user", "content": "hi"},), settings)


def test_validate_settings_names_the_key_and_copies() -> None:
    with pytest.raises(errors.ProviderConfigError, match="'temperature'"):
        _base.validate_settings({"max_tokens": 5, "temperature": math.nan})
    circular: list[Any] = []
    circular.append(circular)
    with pytest.raises(errors.ProviderConfigError, match="'stop'"):
        _base.validate_settings({"stop": circular})
    given_settings = {"temperature": 0.2, "stop": ["\n"], "stream_options": None}
    out = _base.validate_settings(given_settings)
    assert out == given_settings and out is not given_settings
    assert _base.validate_settings(None) == {}
    with pytest.raises(errors.ProviderConfigError):
        _base.validate_settings([("temperature", 1)])


@pytest.mark.parametrize("model", ["", "   ", None, 3, "gpt\n4"])
def test_empty_or_bad_model_is_a_typed_error(model: Any) -> None:
    with pytest.raises(errors.ProviderConfigError, match="model"):
        _base.validate_model(model)
    with pytest.raises(errors.ProviderConfigError, match="model"):
        ChatRequest(model, ({"role": "user", "content": "hi"},))


def test_provider_arguments_are_validated() -> None:
    for kwargs in (
        {"max_concurrency": 0},
        {"max_concurrency": "4"},
        {"retry": {"max_attempts": 2}},
        {"timeouts": 5},
        {"headers": {"x-thing": "a\nb"}},
        {"max_event_bytes": -1},
    ):
        with pytest.raises(errors.ProviderConfigError):
            OpenAICompatible(base_url="http://127.0.0.1:9/v1", **kwargs)


def test_a_model_string_without_a_model_is_a_typed_error() -> None:
    registry = ProviderRegistry([OpenAICompatible(name="local", base_url="http://127.0.0.1:9/v1")])
    with pytest.raises(errors.ProviderConfigError, match="names no model"):
        registry.resolve("local:")
    with pytest.raises(errors.ProviderConfigError, match="control characters"):
        registry.resolve("local:gpt\r\n")
    assert registry.resolve("local:m")[1] == "m"
    assert registry.resolve("echo:")[1] == "echo"


# -- what the default (aiohttp) client does and does not do --------------------------------


@pytest.mark.parametrize("transport", ["default", "httpx"])
async def test_a_redirect_is_an_error_and_is_not_followed(
    server: FakeLLMServer, transport: str
) -> None:
    # a redirect could carry the key to another host: the 3xx is reported, never followed
    extra = {"transport": httpx.AsyncHTTPTransport} if transport == "httpx" else {}
    provider = make("openai", server, retry=RetryPolicy(max_attempts=3, base_delay=0), **extra)
    events, exc = await run(provider, req(model="m+fault:302"))
    assert isinstance(exc, ProviderHTTPError) and exc.status_code == 302
    assert not [e for e in events if isinstance(e, TextDelta)]
    assert len(server.requests) == 1  # not retried either


def _clear_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy settings from the machine's environment but the ones a test sets."""
    for var in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


async def test_the_environment_proxy_is_used(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    seen: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        writer.write(b"HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    _clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    try:
        # the proxy is resolved when the provider's client is made, once
        _, exc = await run(make("openai", server), req())
    finally:
        listener.close()
        await listener.wait_closed()
    assert isinstance(exc, ProviderHTTPError) and exc.status_code == 418
    # the absolute-form request line is what a proxy receives; the server saw nothing
    assert seen == [f"POST {server.openai_base_url}/chat/completions HTTP/1.1\r\n".encode()]
    assert server.requests == []


@pytest.mark.parametrize(
    "data",
    [
        '{"t": "\\ud83d\\ude00 ok"}',
        '{"t": "lone \\ud800 half"}',  # orjson refuses it; json (and so we) take it
        '{"n": 9223372036854775807, "f": 1.5e300}',
        '{"x": NaN}',
        '{"a": 1, "a": 2}',
    ],
)
def test_an_sse_event_decodes_exactly_as_json_reads_it(data: str) -> None:
    import json

    provider = OpenAICompatible(base_url="http://127.0.0.1:9/v1", api_key=KEY)
    assert provider._decode_event(data) == json.loads(data)  # type: ignore[attr-defined]


@pytest.mark.parametrize("data", ['{"t": ', "[1, 2]", "tru", '"s"'])
def test_an_sse_event_that_is_no_json_object_is_a_stream_error(data: str) -> None:
    provider = OpenAICompatible(base_url="http://127.0.0.1:9/v1", api_key=KEY)
    with pytest.raises(ProviderStreamError, match="malformed SSE data line"):
        provider._decode_event(data)  # type: ignore[attr-defined]


@pytest.mark.parametrize("transport", ["default", "httpx"])
@pytest.mark.parametrize("form", ["http://{auth}@127.0.0.1:{port}", "{auth}@127.0.0.1:{port}"])
async def test_a_proxy_password_from_the_environment_is_never_shown(
    server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch, transport: str, form: str
) -> None:
    import asyncio

    user, password = "proxy-user-7f3a", "pr0xy-Passw0rd-9c2e1b"
    heads: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # a hostile (or merely verbose) proxy quotes the request head back, its
        # Proxy-Authorization header (base64 of user:password) included
        head = await reader.readuntil(b"\r\n\r\n")
        heads.append(head)
        body = head + b"\n" + f"bad login {user}:{password}".encode()
        writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    _clear_proxy_env(monkeypatch)
    monkeypatch.setenv("HTTP_PROXY", form.format(auth=f"{user}:{password}", port=port))
    if transport == "httpx":
        monkeypatch.setenv("PROMPTSTATE_HTTP_TRANSPORT", "httpx")
    try:
        _, exc = await run(make("openai", server), req())
    finally:
        listener.close()
        await listener.wait_closed()
    if isinstance(exc, ProviderHTTPError):
        assert exc.status_code == 407
        assert b"proxy-authorization: basic " in heads[0].lower()  # the login was sent
        assert "[redacted]" in str(exc)  # the reply was shown, with the secrets taken out
    else:
        # aiohttp reads a proxy URL without a scheme as a scheme of its own and refuses
        # it; its error quotes the URL, which must come out redacted all the same
        assert form.startswith("{auth}") and transport == "default"
        assert isinstance(exc, errors.ProviderConnectionError) and not heads

    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    for text in texts_of(exc):
        assert password not in text and basic not in text, text


# -- the total deadline: one timer per call, armed only around a guarded await -------------


async def test_a_deadline_passing_between_awaits_never_cancels_the_consumer() -> None:
    import asyncio

    from promptstate.providers._retry import Deadline

    deadline = Deadline(0.05, "p")
    assert await deadline.run(asyncio.sleep(0, "first")) == "first"
    # the consumer's own await (between two reads) outlives the deadline: untouched
    await asyncio.sleep(0.2)
    read = asyncio.sleep(0, "never")
    with pytest.raises(ProviderTimeoutError, match=r"exceeded total deadline of 0\.05s"):
        await deadline.run(read)
    assert read.cr_frame is None  # closed, not left un-awaited
    deadline.close()


async def test_a_deadline_cancels_a_guarded_await_and_leaves_no_timer() -> None:
    import asyncio

    from promptstate.providers._retry import Deadline

    loop = asyncio.get_running_loop()
    deadline = Deadline(0.05, "p")
    with pytest.raises(ProviderTimeoutError):
        await deadline.run(asyncio.Event().wait())
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0  # the timer's cancel was taken back
    live = Deadline(60, "p")
    await live.run(asyncio.sleep(0))
    live.close()
    handles = [h for h in loop._scheduled if not h.cancelled()]  # type: ignore[attr-defined]
    assert not [h for h in handles if getattr(h._callback, "__self__", None) is live]


async def test_a_cancel_from_outside_is_never_mistaken_for_the_deadline() -> None:
    import asyncio

    from promptstate.providers._retry import Deadline

    deadline = Deadline(30, "p")
    started = asyncio.Event()

    async def guarded() -> None:
        async def wait() -> None:
            started.set()
            await asyncio.Event().wait()

        await deadline.run(wait())

    task = asyncio.ensure_future(guarded())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # and when both come in the same step, the outside cancel wins: it is not a timeout
    both = Deadline(30, "p")
    task2 = asyncio.ensure_future(both.run(asyncio.Event().wait()))
    await asyncio.sleep(0)  # task2 is now inside the guarded await
    both._expire()  # type: ignore[attr-defined]  # the timer firing, by hand
    task2.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task2
    deadline.close()
    both.close()


async def test_a_deadline_whose_cancel_is_swallowed_still_ends_the_call() -> None:
    import asyncio

    from promptstate.providers._retry import Deadline

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "late reply"  # a library that eats the cancel
        return "never"

    deadline = Deadline(0.02, "p")
    with pytest.raises(ProviderTimeoutError):
        await deadline.run(stubborn())
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    deadline.close()
