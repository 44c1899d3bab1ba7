"""A fake LLM API server on 127.0.0.1 for tests and benchmarks.

It speaks OpenAI's ``POST /v1/chat/completions`` and Anthropic's ``POST /v1/messages``
over real HTTP (uvicorn in a background thread), streaming SSE framed like the real
APIs. The reply echoes the last user message exactly, piece by piece (one word plus its
trailing whitespace per chunk); token counts are whitespace-separated words.

Usage::

    server = FakeLLMServer().start()     # or: with FakeLLMServer() as server:
    server.openai_base_url               # "http://127.0.0.1:PORT/v1"
    server.base_url                      # Anthropic's base URL (it adds /v1/messages)
    server.script(["429", "500", "ok"])  # one entry consumed per request
    server.requests[-1].body             # what the client sent
    server.stop()

Faults
------
Pick faults per request with the header ``x-fake-fault: <spec>``, with a model name
that contains ``fault:<spec>`` (e.g. ``"fault:429"``, ``"gpt-x+fault:drip=0.01"``), or
server-wide with :meth:`FakeLLMServer.script`. A spec is a comma- or semicolon-separated
list of items; faults from all three sources combine. Items:

``ok``                          nothing (useful in scripts)
``<status>``                    reply with that HTTP status and an error body shaped like
                                the API's (``400``, ``401``, ``429``, ``500``, ``503``...)
``<status>:retry_after=<v>``    the same with ``Retry-After: <v>`` (429/503 send ``0`` by
                                default)
``delay=<s>``                   wait before answering (added to ``server.latency``)
``slow_first_byte=<s>``         send headers at once, then wait before the first event
``drip=<s>``                    wait before every text chunk
``drop_after=<n>``              close the connection after ``n`` text chunks (mid-body)
``stall=<s>``                   stop sending for ``s`` seconds after the first text chunk
                                (``stall=forever``: never send again)
``malformed``                   a broken ``data:`` line after the first text chunk
``error_event``                 an in-stream error event after the first text chunk
``no_usage``                    leave out every usage field
``words=<n>``                   reply with ``word1 word2 ... wordN`` instead of the echo

Faults that never end a response on their own (every byte resets a client's read
timeout, so only a total deadline ends them):

``pings=<s>``                   after the first text chunk, an SSE comment ``: ping``
                                every ``s`` seconds, forever
``endless``                     after the first text chunk, more text chunks forever
                                (paced by ``drip``, else every millisecond)
``header_drip=<s>``             the status line, then header lines one byte every ``s``
                                seconds, forever (written to the socket directly)
``giant_event=<n>``             the first text chunk carries ``n`` extra bytes of text
                                (``"x" * n``) in one SSE event

Faults that echo the request's credentials back (the values of headers whose name has
``auth``, ``key``, ``token`` or ``secret`` in it, and the URL's query string), the way
careless servers and proxies do; clients must redact them. ``pad=<n>`` puts ``n`` dots
before the echo, so that a client cutting the text short before redacting it keeps a
prefix of the key:

``echo=body``                   HTTP 401 with a plain-text body that repeats them
``echo=json``                   HTTP 200, ``application/json``, a body that is not JSON
``echo=sse``                    HTTP 200 SSE whose first ``data:`` line is not JSON
``echo=event``                  an in-stream error event (a retryable type) quoting them
``echo=status``                 a malformed status line quoting them (raw socket)
``echo=header``                 a malformed header line quoting them (raw socket)

Add ``*N`` to an item (``429*2``) to apply it only to the first ``N`` requests that carry
that same item; :meth:`FakeLLMServer.reset` forgets the counts. That lets a test that
can only choose the model string ask for "fail twice, then succeed".
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import json
import logging
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import uvicorn

__all__ = ["FakeLLMServer", "FakeServerProcess", "Faults", "RecordedRequest", "parse_faults"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]
_PIECE = re.compile(r"\s*\S+\s*|\s+")
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

# Set inside a request task that drops its connection on purpose, so the "returned
# without completing response" error uvicorn logs for it is filtered out.
_DROPPING: contextvars.ContextVar[bool] = contextvars.ContextVar("fake_llm_dropping", default=False)


class _ExpectedDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _DROPPING.get()


_uvicorn_error_logger = logging.getLogger("uvicorn.error")
if not any(isinstance(f, _ExpectedDropFilter) for f in _uvicorn_error_logger.filters):
    _uvicorn_error_logger.addFilter(_ExpectedDropFilter())


@dataclass
class Faults:
    """The resolved faults for one request."""

    status: int | None = None
    retry_after: str | None = None
    delay: float = 0.0
    slow_first_byte: float = 0.0
    drip: float = 0.0
    drop_after: int | None = None
    stall: float = 0.0
    malformed: bool = False
    error_event: bool = False
    no_usage: bool = False
    words: int | None = None
    pings: float = 0.0
    endless: bool = False
    header_drip: float = 0.0
    giant_event: int | None = None
    echo: str | None = None
    pad: int = 0


_ECHO_PLACES = ("body", "json", "sse", "event", "status", "header")
_SECRET_WORDS = ("auth", "key", "token", "secret")


@dataclass
class RecordedRequest:
    """One request the server received, as it saw it."""

    path: str
    headers: dict[str, str]
    body: Any
    faults: tuple[str, ...]
    status: int = 200
    completed: bool = False
    disconnected: bool = False
    query: str = ""


def split_spec(spec: str) -> list[str]:
    """The items of a fault spec, blanks dropped."""
    return [item.strip() for item in re.split(r"[,;]", spec) if item.strip()]


def parse_faults(items: Iterable[str]) -> Faults:
    """Turn spec items (without ``*N`` suffixes) into :class:`Faults`.

    Raises ``ValueError`` naming the item for anything it does not know.
    """
    faults = Faults()
    for item in items:
        name, _, value = item.partition("=")
        try:
            if item == "ok":
                continue
            if re.fullmatch(r"\d{3}(:retry_after=\S+)?", item):
                status, _, rest = item.partition(":")
                faults.status = int(status)
                faults.retry_after = rest.partition("=")[2] or None
            elif name == "stall" and value == "forever":
                faults.stall = math.inf
            elif name in ("delay", "slow_first_byte", "drip", "stall", "pings", "header_drip"):
                number = float(value)
                if not math.isfinite(number) or number < 0:
                    raise ValueError
                setattr(faults, name, number)
            elif name in ("drop_after", "words", "giant_event", "pad") and value:
                setattr(faults, name, int(value))
            elif name == "echo" and value in _ECHO_PLACES:
                faults.echo = value
            elif item in ("malformed", "error_event", "no_usage", "endless"):
                setattr(faults, item, True)
            else:
                raise ValueError
        except ValueError:
            raise ValueError(f"fake_llm: unknown fault {item!r}") from None
    return faults


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _words(text: str) -> int:
    return len(text.split())


_S = TypeVar("_S", bound="_Server")


class _Server:
    """URLs and ``with`` support shared by the in-thread server and the subprocess one."""

    _port: int

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (Anthropic clients append ``/v1/messages``)."""
        return f"http://127.0.0.1:{self._port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"`` (OpenAI clients append ``/chat/completions``)."""
        return self.base_url + "/v1"


class FakeLLMServer(_Server):
    """Fake OpenAI + Anthropic API on ``127.0.0.1``, run by uvicorn in a thread.

    Parameters
    ----------
    latency : float
        Seconds every request waits before answering (benchmarks use ~0.05).
    api_key : str, optional
        When set, requests must carry it (``Authorization: Bearer`` or ``x-api-key``);
        a wrong key gets a 401 whose message repeats the key it was given, which
        tests use to check that clients redact it.
    record : bool
        Keep every request in :attr:`requests`.
    """

    def __init__(self, latency: float = 0.0, api_key: str | None = None, record: bool = True):
        self.latency = latency
        self.api_key = api_key
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._script: collections.deque[str] = collections.deque()
        self._counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        # requests being answered now, and the most at once (a client's real concurrency)
        self.in_flight = 0
        self.peak_in_flight = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> FakeLLMServer:
        """Bind a free port, start serving in a daemon thread, return ``self``."""
        if self._thread is not None:
            raise RuntimeError("FakeLLMServer already started")
        # IPPROTO_TCP, not 0: asyncio only sets TCP_NODELAY on sockets whose proto says TCP;
        # without it Nagle holds the last chunk of every keep-alive response for the
        # client's delayed ACK (~40 ms a request).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            interface="asgi3",  # a bound method fools uvicorn's ASGI2/3 sniffing
            proxy_headers=False,
            log_level="warning",
            log_config=None,  # leave the process's logging setup alone
            access_log=False,
            lifespan="off",
            http="auto",  # httptools when installed (faster), else h11
            timeout_keep_alive=120,  # idle clients keep their pooled connections
            timeout_graceful_shutdown=2,
            backlog=4096,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="fake-llm", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("FakeLLMServer did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=5)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5)

    # -- test controls ------------------------------------------------------------------

    def script(self, specs: Iterable[str]) -> None:
        """Queue fault specs; each request to a chat endpoint takes the next one."""
        with self._lock:
            self._script.extend(specs)

    def reset(self) -> None:
        """Forget recorded requests, queued scripts and ``*N`` counts."""
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._counts.clear()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate`` (e.g. on :attr:`requests`) until true or ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def _fault_items(self, model: Any, header: str | None) -> list[str]:
        specs: list[str] = []
        if isinstance(model, str) and "fault:" in model:
            specs += split_spec(model.split("fault:", 1)[1])
        if header:
            specs += split_spec(header)
        with self._lock:
            if self._script:
                specs += split_spec(self._script.popleft())
            active = []
            for item in specs:
                base, star, times = item.rpartition("*")
                if star and times.isdigit():
                    self._counts[item] += 1
                    if self._counts[item] > int(times):
                        continue
                    item = base
                active.append(item)
        return active

    # -- ASGI ---------------------------------------------------------------------------

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        path: str = scope["path"]
        if scope["method"] == "GET" and path in ("/", "/health"):
            await _send_json(send, 200, {"status": "ok"})
            return
        api = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic"}.get(path)
        if scope["method"] != "POST" or api is None:
            await _send_json(send, 404, {"error": {"message": f"no route {path}"}})
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            body = json.loads(b"".join(chunks))
        except ValueError:
            body = None
        items = self._fault_items(
            body.get("model") if isinstance(body, dict) else None, headers.get("x-fake-fault")
        )
        record = RecordedRequest(path, headers, body, tuple(items))
        record.query = scope.get("query_string", b"").decode("latin-1")
        if self.record:
            self.requests.append(record)
        reply = _Reply(self, api, record, send, receive)
        try:
            faults = parse_faults(items)
        except ValueError as exc:
            await reply.error(400, str(exc))
            return
        wait = self.latency + faults.delay
        self.in_flight += 1  # the server's own loop: no lock needed
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if wait > 0:
                await asyncio.sleep(wait)
            await reply.run(faults)
        finally:
            self.in_flight -= 1
        if reply.dropped:
            _DROPPING.set(True)


async def _send_json(
    send: Send, status: int, obj: Any, extra_headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    payload = _DUMPS(obj).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        *extra_headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


_OPENAI_ERRORS = {
    400: ("invalid_request_error", None, "Invalid request (fake 400 from fake_llm)."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    408: ("timeout", None, "Request timed out."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}
_ANTHROPIC_ERRORS = {
    400: ("invalid_request_error", "Invalid request (fake 400 from fake_llm)."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission."),
    404: ("not_found_error", "Not found."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    503: ("overloaded_error", "Overloaded"),
    529: ("overloaded_error", "Overloaded"),
}


class _Reply:
    """Builds and sends one response in the shape of the requested API."""

    def __init__(
        self, server: FakeLLMServer, api: str, record: RecordedRequest, send: Send, receive: Receive
    ) -> None:
        self.server = server
        self.api = api
        self.record = record
        self.send = send
        self.receive = receive
        self.dropped = False
        self.id = f"{'chatcmpl-' if api == 'openai' else 'msg_'}fake{next(server._ids)}"
        self._text_frame: Callable[[str], bytes] = lambda piece: b""

    async def error(self, status: int, message: str | None = None, retry_after: str | None = None):
        self.record.status = status
        extra = []
        if retry_after is not None or status in (429, 503):
            extra.append((b"retry-after", (retry_after or "0").encode()))
        if self.api == "openai":
            kind, code, default = _OPENAI_ERRORS.get(status, ("error", None, f"HTTP {status}"))
            obj: Any = {
                "error": {"message": message or default, "type": kind, "param": None, "code": code}
            }
        else:
            kind, default = _ANTHROPIC_ERRORS.get(status, ("api_error", f"HTTP {status}"))
            obj = {"type": "error", "error": {"type": kind, "message": message or default}}
        await _send_json(self.send, status, obj, extra)
        self.record.completed = True

    def _check(self, body: Any, headers: dict[str, str]) -> tuple[int, str] | None:
        """Reject what the real API would reject, so client bugs show up here."""
        server = self.server
        if not isinstance(body, dict):
            return 400, "We could not parse the JSON body of your request."
        if server.api_key is not None:
            if self.api == "openai":
                given = headers.get("authorization", "").removeprefix("Bearer ")
            else:
                given = headers.get("x-api-key", "")
            if given != server.api_key:
                # Repeats the key like a careless API would: clients must redact it.
                return 401, f"Incorrect API key provided: {given}."
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not body.get("model"):
            return 400, "'model' and a non-empty 'messages' list are required."
        if self.api == "openai":
            if body.get("stream_options") is not None and not body.get("stream"):
                return (
                    400,
                    "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                )
        else:
            if "anthropic-version" not in headers:
                return 400, "anthropic-version: header is required"
            if not isinstance(body.get("max_tokens"), int):
                return 400, "max_tokens: Field required"
            if any(isinstance(m, dict) and m.get("role") == "system" for m in messages):
                return 400, (
                    'messages: Unexpected role "system". The Messages API accepts a '
                    'top-level `system` parameter, not "system" as an input message role.'
                )
        return None

    # -- faults that echo credentials or write raw bytes ---------------------------------

    def _echoed(self, pad: int) -> str:
        """What a careless server repeats: credential headers and the query string."""
        values = [
            f"{name}: {value}"
            for name, value in self.record.headers.items()
            if any(word in name for word in _SECRET_WORDS)
        ]
        if self.record.query:
            values.append(f"query: {self.record.query}")
        return "." * pad + " you sent " + " | ".join(values or ["nothing secret"])

    def _transport(self) -> asyncio.Transport:
        # uvicorn's send() is a bound method of its request cycle, which holds the
        # connection's transport: the only way to put bytes on the wire that no valid
        # ASGI response can produce (a broken status line, headers that never end).
        transport = getattr(getattr(self.send, "__self__", None), "transport", None)
        if not isinstance(transport, asyncio.Transport):
            raise RuntimeError("fake_llm: raw faults need uvicorn's h11/httptools protocol")
        return transport

    async def _raw(self, head: bytes, drip: float = 0.0) -> None:
        """Write ``head`` to the socket (one byte per ``drip`` s, forever, if set), close."""
        transport = self._transport()
        self.dropped = True  # uvicorn never sees a response: keep its log quiet
        if not drip:
            transport.write(head)
            self.record.completed = True
        else:
            transport.write(head)
            filler = itertools.cycle(b"x-drip: a\r\n")
            while not transport.is_closing():
                await asyncio.sleep(drip)
                transport.write(bytes([next(filler)]))
            self.record.disconnected = True
        transport.close()
        await self._wait_disconnect()

    async def _echo(self, faults: Faults) -> bool:
        """Answer with the credentials echoed back; False if this fault does not apply."""
        where = faults.echo
        echoed = self._echoed(faults.pad)
        if where == "body":
            self.record.status = 401
            payload = echoed.encode()
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(payload)).encode()),
            ]
            await self.send({"type": "http.response.start", "status": 401, "headers": headers})
            await self.send({"type": "http.response.body", "body": payload})
            self.record.completed = True
        elif where == "json":
            payload = b'{"choices": [' + echoed.encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ]
            await self.send({"type": "http.response.start", "status": 200, "headers": headers})
            await self.send({"type": "http.response.body", "body": payload})
            self.record.completed = True
        elif where == "sse":
            await self.send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            frame = b'data: {"oops": ' + echoed.encode() + b"\n\n"
            await self.send({"type": "http.response.body", "body": frame})
            self.record.completed = True
        elif where == "status":
            line = f"HTTP/1.1 4O1 Unauthorized {echoed}\r\n".encode("latin-1")
            await self._raw(line + b"content-length: 0\r\n\r\n")
        elif where == "header":
            # "you sent authorization: ..." is no header: its name has spaces in it
            line = f"HTTP/1.1 200 OK\r\n{echoed.lstrip(' .')}\r\n".encode("latin-1")
            await self._raw(line + b"content-length: 0\r\n\r\n")
        else:
            return False
        return True

    async def run(self, faults: Faults) -> None:
        body = self.record.body
        problem = self._check(body, self.record.headers)
        if problem is not None:
            await self.error(*problem)
            return
        if faults.header_drip:
            await self._raw(b"HTTP/1.1 200 OK\r\n", drip=faults.header_drip)
            return
        if faults.echo not in (None, "event") and await self._echo(faults):
            return
        if faults.status is not None:
            await self.error(faults.status, retry_after=faults.retry_after)
            return
        messages = body["messages"]
        if faults.words is not None:
            text = " ".join(f"word{i}" for i in range(1, faults.words + 1))
        else:
            text = next(
                (_text_of(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
                "",
            )
        pieces = _PIECE.findall(text)
        limit = body.get("max_tokens", body.get("max_completion_tokens"))
        truncated = isinstance(limit, int) and len(pieces) > limit
        if truncated:
            pieces = pieces[:limit]
        if faults.giant_event:
            pieces.insert(0, "x" * faults.giant_event)
        input_words = sum(_words(_text_of(m.get("content"))) for m in messages)
        if self.api == "anthropic" and body.get("system"):
            input_words += _words(_text_of(body["system"]))
        usage = (input_words, _words("".join(pieces)))
        if not body.get("stream"):
            await self._complete("".join(pieces), usage, truncated, faults)
        elif self.api == "openai":
            await self._stream(self._openai_frames(pieces, usage, truncated, faults), faults)
        else:
            await self._stream(self._anthropic_frames(pieces, usage, truncated, faults), faults)

    async def _complete(
        self, text: str, usage: tuple[int, int], truncated: bool, faults: Faults
    ) -> None:
        model = self.record.body["model"]
        obj: dict[str, Any]
        if self.api == "openai":
            obj = {
                "id": self.id,
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "length" if truncated else "stop",
                    }
                ],
                "system_fingerprint": None,
            }
            if not faults.no_usage:
                obj["usage"] = {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": usage[0] + usage[1],
                }
        else:
            obj = {
                "id": self.id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "max_tokens" if truncated else "end_turn",
                "stop_sequence": None,
            }
            if not faults.no_usage:
                obj["usage"] = {"input_tokens": usage[0], "output_tokens": usage[1]}
        await _send_json(self.send, 200, obj)
        self.record.completed = True

    # Frames are (is_text_chunk, bytes); the fault point is right after the first text
    # chunk, or after the opening frame when the reply has no text.

    def _openai_frames(
        self, pieces: list[str], usage: tuple[int, int], truncated: bool, faults: Faults
    ) -> list[tuple[bool, bytes]]:
        body = self.record.body
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        include_usage = include_usage and not faults.no_usage
        base = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "system_fingerprint": None,
        }

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            obj = {
                **base,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if include_usage:
                obj["usage"] = None
            return b"data: " + _DUMPS(obj).encode() + b"\n\n"

        self._text_frame = lambda piece: chunk({"content": piece}, None)
        frames = [(False, chunk({"role": "assistant", "content": "", "refusal": None}, None))]
        frames += [(True, chunk({"content": p}, None)) for p in pieces]
        frames.append((False, chunk({}, "length" if truncated else "stop")))
        if include_usage:
            u = {"prompt_tokens": usage[0], "completion_tokens": usage[1]}
            u["total_tokens"] = usage[0] + usage[1]
            frames.append(
                (False, b"data: " + _DUMPS({**base, "choices": [], "usage": u}).encode() + b"\n\n")
            )
        frames.append((False, b"data: [DONE]\n\n"))
        return frames

    def _anthropic_frames(
        self, pieces: list[str], usage: tuple[int, int], truncated: bool, faults: Faults
    ) -> list[tuple[bool, bytes]]:
        def event(name: str, obj: dict[str, Any]) -> bytes:
            return b"event: " + name.encode() + b"\ndata: " + _DUMPS(obj).encode() + b"\n\n"

        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": self.record.body["model"],
            "stop_reason": None,
            "stop_sequence": None,
        }
        delta_usage: dict[str, Any] = {}
        if not faults.no_usage:
            message["usage"] = {"input_tokens": usage[0], "output_tokens": 1}
            delta_usage = {"usage": {"output_tokens": usage[1]}}
        stop = "max_tokens" if truncated else "end_turn"

        def text_frame(piece: str) -> bytes:
            delta = {"type": "text_delta", "text": piece}
            return event(
                "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}
            )

        self._text_frame = text_frame
        frames = [
            (False, event("message_start", {"type": "message_start", "message": message})),
            (
                False,
                event(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "text", "text": ""},
                    },
                ),
            ),
            (False, event("ping", {"type": "ping"})),
        ]
        frames += [(True, text_frame(p)) for p in pieces]
        frames += [
            (False, event("content_block_stop", {"type": "content_block_stop", "index": 0})),
            (
                False,
                event(
                    "message_delta",
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop, "stop_sequence": None},
                        **delta_usage,
                    },
                ),
            ),
            (False, event("message_stop", {"type": "message_stop"})),
        ]
        return frames

    def _fault_frame(self, faults: Faults) -> bytes | None:
        if faults.malformed:
            if self.api == "openai":
                return (
                    b'data: {"id":"' + self.id.encode() + b'","choices":[{"delta":{"content":"x\n\n'
                )
            return (
                b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"te\n\n'
            )
        if faults.echo == "event":
            echoed = self._echoed(faults.pad)
            if self.api == "openai":
                # a transient type, so the echo also reaches the retry reason
                err = {"error": {"message": echoed, "type": f"server_error {echoed}"}}
                return b"data: " + _DUMPS(err).encode() + b"\n\n"
            err = {"type": "error", "error": {"type": "api_error", "message": echoed}}
            return b"event: error\ndata: " + _DUMPS(err).encode() + b"\n\n"
        if faults.error_event:
            if self.api == "openai":
                err = {
                    "error": {
                        "message": "The server had an error while processing your request.",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                }
                return b"data: " + _DUMPS(err).encode() + b"\n\n"
            err = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            return b"event: error\ndata: " + _DUMPS(err).encode() + b"\n\n"
        return None

    async def _stream(self, frames: list[tuple[bool, bytes]], faults: Faults) -> None:
        """Send frames while watching for the client going away."""
        if not (
            faults.drip
            or faults.stall
            or faults.slow_first_byte
            or faults.malformed
            or faults.error_event
            or faults.pings
            or faults.endless
            or faults.echo
            or faults.drop_after is not None
        ):
            # Nothing to pace or break: one write is the same bytes on the wire, and
            # skipping the per-frame sends and watcher task keeps benchmarks server-light.
            await self.send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
            body = b"".join(frame for _, frame in frames)
            await self.send({"type": "http.response.body", "body": body, "more_body": False})
            self.record.completed = True
            return
        producer = asyncio.ensure_future(self._produce(frames, faults))
        watcher = asyncio.ensure_future(self._wait_disconnect())
        try:
            await asyncio.wait({producer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not producer.done():
                # The client left (or we are shutting down): stop mid-stream.
                self.record.disconnected = watcher.done()
                producer.cancel()
            watcher.cancel()
            await asyncio.gather(producer, watcher, return_exceptions=True)
        if producer.done() and not producer.cancelled() and producer.exception() is not None:
            raise producer.exception()  # type: ignore[misc]

    async def _wait_disconnect(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass

    async def _produce(self, frames: list[tuple[bool, bytes]], faults: Faults) -> None:
        send = self.send
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
        if faults.slow_first_byte:
            await asyncio.sleep(faults.slow_first_byte)
        has_text = any(is_text for is_text, _ in frames)
        fault_frame = self._fault_frame(faults)
        text_sent = 0
        for index, (is_text, frame) in enumerate(frames):
            if is_text:
                if faults.drop_after is not None and text_sent >= faults.drop_after:
                    self.dropped = True  # return with the response unfinished: uvicorn closes
                    return
                if faults.drip:
                    await asyncio.sleep(faults.drip)
            await send({"type": "http.response.body", "body": frame, "more_body": True})
            text_sent += is_text
            if (is_text and text_sent == 1) or (not has_text and index == 0):
                if faults.stall:
                    await asyncio.sleep(faults.stall)
                if fault_frame is not None:
                    await send(
                        {"type": "http.response.body", "body": fault_frame, "more_body": True}
                    )
                    if faults.error_event or faults.echo == "event":
                        break  # the real APIs end the stream after an error event
                if faults.pings:  # keep-alive comments, never an event: until the client leaves
                    while True:
                        await asyncio.sleep(faults.pings)
                        await send(
                            {"type": "http.response.body", "body": b": ping\n\n", "more_body": True}
                        )
                if faults.endless:  # text without end
                    for n in itertools.count(1):
                        await asyncio.sleep(faults.drip or 0.001)
                        frame = self._text_frame(f"more{n} ")
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.record.completed = True


class FakeServerProcess(_Server):
    """A :class:`FakeLLMServer` in a child process (``python -m tests.fake_llm``).

    Benchmarks and load tests use it so the server's work shares neither the GIL nor the
    RSS of the process under test. It stops when :meth:`stop` closes its stdin.

    Parameters
    ----------
    latency : float
        Seconds every request waits before answering.
    """

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self._port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def port(self) -> int:
        """The port the child listens on (0 before :meth:`start`)."""
        return self._port

    def start(self) -> FakeServerProcess:
        """Spawn the server and wait for its port."""
        repo = Path(__file__).resolve().parent.parent
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.fake_llm", "--latency", str(self.latency)],
            cwd=repo,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()
        if not line.isdigit():
            self.stop()
            raise RuntimeError("fake server process did not start")
        self._port = int(line)
        return self

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far (Linux)."""
        if self._proc is None:
            return 0.0
        try:
            with open(f"/proc/{self._proc.pid}/stat", encoding="ascii") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        """Close the child's stdin (it stops itself), then make sure it is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> None:
    """Serve until stdin closes; print the port first (for :class:`FakeServerProcess`)."""
    import argparse

    parser = argparse.ArgumentParser(description="fake OpenAI/Anthropic API on 127.0.0.1")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeLLMServer(latency=args.latency, record=False).start()
    print(server._port, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
