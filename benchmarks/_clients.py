"""The clients the HTTP benchmarks compare, each sending the same chat requests.

Every client sends exactly the body promptstate sends for the benchmark prompt (streaming,
``stream_options.include_usage``) to the same fake server and reads each response to the
end. The bare loops only read the bytes; promptstate also parses the SSE stream, updates
its store and commits two run-log rows per send (``running``, then the terminal row) to a
DuckDB file before a send counts as done.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import FakeServerProcess, cpu_seconds

__all__ = ["CLIENTS", "Sample", "body", "measure", "rows"]

SYSTEM = "Be terse."
TEMPLATE = "Say: {{text}}"
WORDS = " ".join(f"w{i}" for i in range(20))


def bench_prompt() -> Any:
    """The prompt every promptstate client runs: SYSTEM + TEMPLATE on ``fake:bench``."""
    import promptstate as ps

    return ps.Prompt(
        id="bench",
        messages=[ps.system(SYSTEM), ps.user(TEMPLATE)],
        variables={"text": ""},
        model="fake:bench",
    )


def rows(n: int) -> list[dict[str, str]]:
    """``n`` distinct variable sets (a 20-word text and an index)."""
    return [{"text": f"{WORDS} #{k}"} for k in range(n)]


def body(row: dict[str, str]) -> dict[str, Any]:
    """The request body promptstate sends for ``row`` (checked by ``--check``)."""
    return {
        "model": "bench",
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "Say: " + row["text"]},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


@dataclass
class Sample:
    """One timed batch: wall seconds, client CPU seconds, server CPU seconds, sends."""

    wall: float
    cpu: float
    server_cpu: float
    n: int

    @property
    def rate(self) -> float:
        """Sends per second."""
        return self.n / self.wall

    @property
    def cpu_us(self) -> float:
        """Client CPU microseconds per send (all threads of this process)."""
        return self.cpu / self.n * 1e6


async def _workers(
    one: Callable[[dict[str, Any]], Awaitable[None]], bodies: list[dict[str, Any]], c: int
) -> None:
    it = iter(bodies)

    async def worker() -> None:
        for b in it:
            await one(b)

    await asyncio.gather(*(worker() for _ in range(c)))


async def _timed(
    server: FakeServerProcess,
    run: Callable[[list[dict[str, str]]], Awaitable[None]],
    n: int,
    warmup: int,
) -> Sample:
    await run(rows(warmup))
    batch = rows(n)
    s0, c0, t0 = server.cpu_seconds(), cpu_seconds(), time.perf_counter()
    await run(batch)
    wall = time.perf_counter() - t0
    return Sample(wall, cpu_seconds() - c0, server.cpu_seconds() - s0, n)


async def bare_httpx(server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """``httpx.AsyncClient`` (its own transport, pool sized for ``c``) in ``c`` workers."""
    import httpx

    url = server.openai_base_url + "/chat/completions"
    limits = httpx.Limits(max_connections=c, max_keepalive_connections=c)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:

        async def one(b: dict[str, Any]) -> None:
            r = await client.post(url, json=b)
            r.raise_for_status()

        async def run(batch: list[dict[str, str]]) -> None:
            await _workers(one, [body(r) for r in batch], c)

        return await _timed(server, run, n, warmup)


async def bare_httpx_aiohttp(server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """``httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport(...))`` in ``c`` workers."""
    import httpx
    from httpx_aiohttp import AiohttpTransport

    url = server.openai_base_url + "/chat/completions"
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=c))
    async with httpx.AsyncClient(transport=transport, timeout=60) as client:

        async def one(b: dict[str, Any]) -> None:
            r = await client.post(url, json=b)
            r.raise_for_status()

        async def run(batch: list[dict[str, str]]) -> None:
            await _workers(one, [body(r) for r in batch], c)

        return await _timed(server, run, n, warmup)


async def bare_aiohttp(server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """``aiohttp.ClientSession`` (connector limit ``c``) in ``c`` workers."""
    import aiohttp

    url = server.openai_base_url + "/chat/completions"
    timeout = aiohttp.ClientTimeout(total=60)
    connector = aiohttp.TCPConnector(limit=c)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(b: dict[str, Any]) -> None:
            async with session.post(url, json=b) as r:
                r.raise_for_status()
                await r.read()

        async def run(batch: list[dict[str, str]]) -> None:
            await _workers(one, [body(r) for r in batch], c)

        return await _timed(server, run, n, warmup)


async def _promptstate(
    server: FakeServerProcess,
    n: int,
    c: int,
    warmup: int,
    transport: Any,
    *,
    exclusive_db: bool = False,
    interactive: bool = False,
) -> Sample:
    import promptstate as ps
    from promptstate.providers import OpenAICompatible

    with tempfile.TemporaryDirectory(prefix="ps-bench-") as tmp:
        provider = OpenAICompatible(
            name="fake",
            base_url=server.openai_base_url,
            api_key="sk-bench",
            max_concurrency=c,
            transport=transport,
        )
        session = ps.Session(
            db=str(Path(tmp) / "runs.duckdb"), providers=[provider], exclusive_db=exclusive_db
        )
        session.prompts.register(bench_prompt())

        async def run(batch: list[dict[str, str]]) -> None:
            if interactive:  # c instances, each awaiting inst.send() one after another
                await _sends(session, batch, c)
                return
            sweep = await session.sweep("bench", batch, concurrency=c, progress=False)
            if sweep.errors:
                raise RuntimeError(f"{sweep.errors} sends failed: {session.task_errors[-1:]}")

        try:
            sample = await _timed(server, run, n, warmup)
            expected = n + warmup
            logged = session.runs.count()
            if logged != expected:
                raise RuntimeError(f"run log has {logged} rows, expected {expected}")
            return sample
        finally:
            await session.aclose()


async def _sends(session: Any, batch: list[dict[str, str]], c: int) -> None:
    todo = iter(batch)
    instances = [session.start("bench") for _ in range(c)]

    async def worker(inst: Any) -> None:
        for row in todo:
            result = await inst.send(variables=row)
            if result.status != "success":
                raise RuntimeError(f"send failed: {result.error}")

    await asyncio.gather(*(worker(i) for i in instances))
    for inst in instances:
        inst.close()


async def promptstate_default(server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """promptstate with its default transport, file run log (default, shared mode)."""
    return await _promptstate(server, n, c, warmup, None)


async def promptstate_sends(server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """promptstate's interactive path: ``c`` instances, each awaiting ``inst.send()``."""
    return await _promptstate(server, n, c, warmup, None, interactive=True)


async def promptstate_exclusive(server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """promptstate, default transport, ``Session(exclusive_db=True)``."""
    return await _promptstate(server, n, c, warmup, None, exclusive_db=True)


async def promptstate_httpx(server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """promptstate on httpx's own transport (the pre-aiohttp default, pool sized for ``c``)."""
    import httpx

    def transport() -> httpx.AsyncBaseTransport:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=c)
        return httpx.AsyncHTTPTransport(limits=limits)

    return await _promptstate(server, n, c, warmup, transport)


Runner = Callable[[FakeServerProcess, int, int, int], Awaitable[Sample]]

CLIENTS: dict[str, Runner] = {
    "bare httpx": bare_httpx,
    "bare httpx+aiohttp transport": bare_httpx_aiohttp,
    "bare aiohttp": bare_aiohttp,
    "promptstate": promptstate_default,
    "promptstate inst.send": promptstate_sends,
    "promptstate exclusive_db": promptstate_exclusive,
    "promptstate on httpx transport": promptstate_httpx,
}


def measure(name: str, server: FakeServerProcess, n: int, c: int, warmup: int) -> Sample:
    """Run client ``name`` once (after ``warmup`` untimed sends) in a fresh event loop."""
    return asyncio.run(CLIENTS[name](server, n, c, warmup))
