"""Helpers shared by the benchmark scripts: the fake server in a subprocess, timing, output.

The fake OpenAI/Anthropic server (``tests/fake_llm.py``) runs in its own process so that on
a 2-core machine the client under test and the server each get a core and do not share a
GIL: with the server in a thread of the benchmark process, every client would pay for the
server's CPU too and the ratios would mostly measure uvicorn.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "REPO",
    "FakeServerProcess",
    "cpu_seconds",
    "fmt_ms",
    "goal",
    "machine_info",
    "median",
    "save_results",
    "section",
    "timed",
]

REPO = Path(__file__).resolve().parent.parent

_SERVER_CODE = """
import asyncio.base_events, socket, sys
sys.path.insert(0, sys.argv[1])

def _set_nodelay(sock):
    # FakeLLMServer binds socket.socket(AF_INET, SOCK_STREAM), whose proto is 0, so
    # asyncio's own _set_nodelay (which wants proto == IPPROTO_TCP) skips the accepted
    # sockets; Nagle then holds the final "0\\r\\n\\r\\n" chunk of every keep-alive
    # response for the client's 40 ms delayed ACK. See benchmarks/proposals/.
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

asyncio.base_events._set_nodelay = _set_nodelay
from tests.fake_llm import FakeLLMServer
srv = FakeLLMServer(latency=float(sys.argv[2]), record=False).start()
print(srv._port, flush=True)
sys.stdin.read()   # serve until the parent closes our stdin
srv.stop()
"""


class FakeServerProcess:
    """``tests.fake_llm.FakeLLMServer`` in a child process (stopped on exit).

    Parameters
    ----------
    latency : float
        Seconds every request waits before answering (``FakeLLMServer(latency=...)``).
    """

    def __init__(self, latency: float = 0.0) -> None:
        self.latency = latency
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (Anthropic-style base URL)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url + "/v1"``."""
        return self.base_url + "/v1"

    def start(self) -> FakeServerProcess:
        """Spawn the server and wait for its port."""
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _SERVER_CODE, str(REPO), str(self.latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("fake server process did not start")
        self.port = int(line)
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

    def __enter__(self) -> FakeServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def median(values: list[float]) -> float:
    """The median (the statistic every benchmark here reports)."""
    return statistics.median(values)


@contextmanager
def timed(out: list[float]) -> Iterator[None]:
    """Append the wall time of the ``with`` body, in seconds, to ``out``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        out.append(time.perf_counter() - t0)


def fmt_ms(seconds: float) -> str:
    """Seconds as a short millisecond string."""
    return f"{seconds * 1000:,.1f} ms"


def section(title: str) -> None:
    """Print a section header."""
    print(f"\n== {title} ==", flush=True)


def machine_info() -> dict[str, str]:
    """CPU, cores, Python and the versions of the libraries the benchmarks exercise."""
    from importlib import metadata

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }
    for dist in (
        "promptstate",
        "httpx",
        "httpx-aiohttp",
        "aiohttp",
        "duckdb",
        "pyarrow",
        "uvicorn",
        "llm",
    ):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "-"
    return info


def cpu_seconds() -> float:
    """CPU seconds this process has used (all threads, user + system)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def save_results(name: str, results: dict[str, Any], path: str | None) -> None:
    """Write ``{"bench": name, ...results}`` as JSON to ``path`` (run_all.py reads it)."""
    if not path:
        return
    Path(path).write_text(json.dumps({"bench": name, **results}, indent=2), encoding="utf-8")


def goal(ok: bool) -> str:
    """``met`` / ``NOT met``."""
    return "met" if ok else "NOT met"
