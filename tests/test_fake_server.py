"""The fake LLM server itself: routing, validation, fault selection."""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

try:
    from fake_llm import FakeLLMServer, parse_faults
except ImportError:  # tests/ imported as a package
    from tests.fake_llm import FakeLLMServer, parse_faults


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def client(server: FakeLLMServer) -> Iterator[httpx.Client]:
    server.reset()
    server.latency = 0.0
    with httpx.Client(base_url=server.base_url, timeout=5) as c:
        yield c


def openai(client: httpx.Client, model: str = "m", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": "hello fake world"}]}
    return client.post("/v1/chat/completions", json={**body, **extra})


def anthropic(client: httpx.Client, body: dict[str, Any], **headers: str) -> httpx.Response:
    return client.post(
        "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01", **headers}
    )


def test_openai_non_stream_shape(client: httpx.Client) -> None:
    data = openai(client).json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "hello fake world"
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}


def test_openai_stream_framing(client: httpx.Client) -> None:
    r = openai(client, stream=True, stream_options={"include_usage": True})
    assert r.headers["content-type"].startswith("text/event-stream")
    events = r.text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert '"choices":[],"usage":{"prompt_tokens":3' in events[-3]
    assert '"finish_reason":"stop"' in events[-4]


def test_anthropic_validation_like_the_real_api(client: httpx.Client) -> None:
    msgs = [{"role": "user", "content": "hi"}]
    r = anthropic(client, {"model": "c", "messages": msgs})
    assert r.status_code == 400 and "max_tokens" in r.text
    r = client.post("/v1/messages", json={"model": "c", "messages": msgs, "max_tokens": 5})
    assert r.status_code == 400 and "anthropic-version" in r.text
    system = [{"role": "system", "content": "x"}, *msgs]
    r = anthropic(client, {"model": "c", "messages": system, "max_tokens": 5})
    assert r.status_code == 400 and "Unexpected role" in r.text
    r = anthropic(client, {"model": "c", "messages": msgs, "max_tokens": 5})
    assert r.json()["content"] == [{"type": "text", "text": "hi"}]


def test_fault_sources_combine_and_script_is_consumed(
    client: httpx.Client, server: FakeLLMServer
) -> None:
    server.script(["500", "ok"])
    assert openai(client).status_code == 500
    assert openai(client).status_code == 200
    assert openai(client).status_code == 200  # script empty
    assert openai(client, model="fault:503").status_code == 503
    r = client.post(
        "/v1/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-fake-fault": "429:retry_after=7"},
    )
    assert (r.status_code, r.headers["retry-after"]) == (429, "7")
    assert openai(client, model="fault:bogus").status_code == 400
    assert [r.status for r in server.requests] == [500, 200, 200, 503, 429, 400]


def test_counted_faults(client: httpx.Client, server: FakeLLMServer) -> None:
    codes = [openai(client, model="fault:429*2").status_code for _ in range(3)]
    assert codes == [429, 429, 200]
    server.reset()
    assert openai(client, model="fault:429*2").status_code == 429


def test_words_and_max_tokens(client: httpx.Client) -> None:
    r = openai(client, model="fault:words=5", max_tokens=3)
    choice = r.json()["choices"][0]
    assert choice["message"]["content"] == "word1 word2 word3 "
    assert choice["finish_reason"] == "length"


def test_parse_faults() -> None:
    faults = parse_faults(["429:retry_after=2", "drip=0.5", "drop_after=3", "no_usage"])
    assert (faults.status, faults.retry_after, faults.drip) == (429, "2", 0.5)
    assert (faults.drop_after, faults.no_usage) == (3, True)
    with pytest.raises(ValueError, match="unknown fault 'drip'"):
        parse_faults(["drip"])


def test_parse_never_ending_and_echo_faults() -> None:
    faults = parse_faults(["stall=forever", "pings=0.5", "header_drip=0.1", "endless"])
    assert (faults.stall, faults.pings, faults.header_drip, faults.endless) == (
        math.inf,
        0.5,
        0.1,
        True,
    )
    faults = parse_faults(["echo=status", "pad=40", "giant_event=1000"])
    assert (faults.echo, faults.pad, faults.giant_event) == ("status", 40, 1000)
    for bad in ("echo=everywhere", "pings=nan", "stall=-1", "pad"):
        with pytest.raises(ValueError, match="unknown fault"):
            parse_faults([bad])


def _raw_request(server: FakeLLMServer, fault: str, headers: str = "") -> socket.socket:
    body = json.dumps(
        {"model": f"m+fault:{fault}", "messages": [{"role": "user", "content": "hi"}]}
    )
    sock = socket.create_connection(("127.0.0.1", int(server.base_url.rsplit(":", 1)[1])), 5)
    sock.sendall(
        (
            f"POST /v1/chat/completions?key=q-Secret-77 HTTP/1.1\r\nhost: x\r\n"
            f"content-type: application/json\r\ncontent-length: {len(body)}\r\n{headers}\r\n{body}"
        ).encode()
    )
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_echo_faults_repeat_credentials(client: httpx.Client, server: FakeLLMServer) -> None:
    r = client.post(
        "/v1/chat/completions?key=q-Secret-77",
        json={"model": "m+fault:echo=body,pad=5", "messages": [{"role": "user", "content": "x"}]},
        headers={"authorization": "Bearer tok-123456", "api-key": "azure-654321"},
    )
    assert r.status_code == 401 and r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith("..... you sent ")
    for part in ("authorization: Bearer tok-123456", "api-key: azure-654321", "key=q-Secret-77"):
        assert part in r.text
    with _raw_request(server, "echo=status", "x-api-key: ant-987654\r\n") as sock:
        head = _read_until_closed(sock)
    assert head.startswith(b"HTTP/1.1 4O1 Unauthorized") and b"x-api-key: ant-987654" in head
    with _raw_request(server, "echo=header", "authorization: Bearer tok-123456\r\n") as sock:
        head = _read_until_closed(sock)
    assert head.startswith(b"HTTP/1.1 200 OK\r\nyou sent authorization: Bearer tok-123456")
    assert server.requests[-1].query == "key=q-Secret-77"


def test_header_drip_sends_a_byte_at_a_time_until_the_client_leaves(
    server: FakeLLMServer,
) -> None:
    with _raw_request(server, "header_drip=0.01") as sock:
        got = b""
        while got.count(b"\n") < 4:  # status line and a few dripped header lines
            got += sock.recv(1)
    assert got.startswith(b"HTTP/1.1 200 OK\r\nx-drip: a\r\n")
    assert server.wait_until(lambda: server.requests[-1].disconnected, 5)


@pytest.mark.parametrize("fault", ["pings=0.001", "endless"])
def test_streams_without_end(client: httpx.Client, server: FakeLLMServer, fault: str) -> None:
    body = {"model": f"m+fault:{fault}", "messages": [{"role": "user", "content": "a b"}]}
    with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
        lines = []
        for line in r.iter_lines():
            lines.append(line)
            if len(lines) > 200:  # far more than the reply has
                break
    wanted = ": ping" if fault.startswith("pings") else '"content":"more'
    assert sum(wanted in line for line in lines) > 50
    assert not any("[DONE]" in line for line in lines)
    assert server.wait_until(lambda: server.requests[-1].disconnected, 5)


def test_giant_event(client: httpx.Client) -> None:
    body = {"model": "m+fault:giant_event=100000", "messages": [{"role": "user", "content": "a"}]}
    r = client.post("/v1/chat/completions", json={**body, "stream": True})
    events = [e for e in r.text.split("\n\n") if e]
    assert len(events[1]) > 100000 and '"content":"' + "x" * 100000 in events[1]
