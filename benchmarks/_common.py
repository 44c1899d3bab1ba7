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
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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

sys.path.insert(0, str(REPO))  # the fake server lives with the tests
from tests.fake_llm import FakeServerProcess  # noqa: E402


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
