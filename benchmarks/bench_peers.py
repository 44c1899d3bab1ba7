"""Peers: the same 200-case task through promptstate, simonw/llm and promptfoo.

Task: 200 variable sets into one chat prompt (system + user template), one model on the
local fake OpenAI-compatible server (0 ms latency, in a subprocess), every run logged,
all tools at the same concurrency (``--concurrency``, default 10).

* promptstate: ``session.sweep(...)`` in-process (DuckDB file log), and the CLI
  ``promptstate sweep`` (process start-up included, like promptfoo's).
* simonw/llm (``pip install llm``): its Python API, ``llm.get_async_model`` on a model
  declared in ``extra-openai-models.yaml`` with ``api_base``, ``asyncio.gather`` under a
  semaphore, each response logged with ``response.log_to_db`` to its SQLite DB.
* promptfoo: ``promptfoo eval --no-cache -j N`` (writes its own SQLite results DB) from
  ``benchmarks/.peers`` (``npm install --prefix benchmarks/.peers promptfoo@latest
  node@22``; promptfoo needs Node >= 22) or ``npx`` when ``--npx`` is given.

Each peer is skipped with a message when it is not installed. Goals: promptstate >= 5x
faster than llm (Python API vs Python API) and >= 3x faster than promptfoo (CLI vs CLI).
Figures are the best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _clients import SYSTEM, TEMPLATE, rows
from _common import REPO, FakeServerProcess, goal, save_results, section

PEERS = REPO / "benchmarks" / ".peers"


def promptstate_api(server: FakeServerProcess, tmp: Path, n: int, c: int) -> float:
    """Seconds for ``session.sweep`` over ``n`` cases (after a 20-case warm-up)."""
    import promptstate as ps
    from promptstate.providers import OpenAICompatible

    async def go() -> float:
        provider = OpenAICompatible(
            name="fake", base_url=server.openai_base_url, api_key="sk-bench", max_concurrency=c
        )
        session = ps.Session(db=str(tmp / f"ps-{time.monotonic_ns()}.duckdb"), providers=[provider])
        session.prompts.register(
            ps.Prompt(
                id="bench",
                messages=[ps.system(SYSTEM), ps.user(TEMPLATE)],
                variables={"text": ""},
                model="fake:bench",
            )
        )
        await session.sweep("bench", rows(20), concurrency=c, progress=False)
        t0 = time.perf_counter()
        sweep = await session.sweep("bench", rows(n), concurrency=c, progress=False)
        wall = time.perf_counter() - t0
        assert sweep.errors == 0 and session.runs.count() == n + 20
        await session.aclose()
        return wall

    return asyncio.run(go())


def promptstate_cli(server: FakeServerProcess, tmp: Path, n: int, c: int) -> float:
    """Seconds for ``promptstate sweep`` (a fresh process) over the same cases."""
    prompt = tmp / "bench.yaml"
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
    cases = tmp / "cases.csv"
    _write_cases(cases, n)
    db = tmp / f"cli-{time.monotonic_ns()}.duckdb"
    env = {**os.environ, "OPENAI_BASE_URL": server.openai_base_url, "OPENAI_API_KEY": "sk-b"}
    cmd = [
        sys.executable,
        "-m",
        "promptstate.cli",
        "sweep",
        str(prompt),
        "--vars",
        str(cases),
        "--concurrency",
        str(c),
        "--quiet",
        "--format",
        "json",
        "--db",
        str(db),
    ]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(f"promptstate sweep failed: {res.stderr.strip()[-500:]}")
    return wall


def _write_cases(path: Path, n: int) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["text"])
        for r in rows(n):
            w.writerow([r["text"]])


def llm_api(server: FakeServerProcess, tmp: Path, n: int, c: int) -> float | None:
    """Seconds for llm's async Python API with SQLite logging, or None if not installed."""
    user_dir = tmp / "llm-user"
    user_dir.mkdir(exist_ok=True)
    (user_dir / "extra-openai-models.yaml").write_text(
        f"- model_id: fake-bench\n  model_name: bench\n  api_base: {server.openai_base_url}\n",
        encoding="utf-8",
    )
    os.environ["LLM_USER_PATH"] = str(user_dir)
    try:
        import llm
        import sqlite_utils
        from llm.migrations import migrate
    except ImportError:
        return None

    async def go() -> float:
        db = sqlite_utils.Database(str(user_dir / f"logs-{time.monotonic_ns()}.db"))
        migrate(db)
        model = llm.get_async_model("fake-bench")
        sem = asyncio.Semaphore(c)

        async def one(row: dict[str, str]) -> None:
            async with sem:
                response = model.prompt("Say: " + row["text"], system=SYSTEM)
                text = await response.text()
                assert text == "Say: " + row["text"], text
                response.log_to_db(db)

        await asyncio.gather(*(one(r) for r in rows(20)))
        t0 = time.perf_counter()
        await asyncio.gather(*(one(r) for r in rows(n)))
        wall = time.perf_counter() - t0
        table = "turns" if "turns" in db.table_names() else "responses"  # llm >= 0.30: turns
        logged = db[table].count
        assert logged == n + 20, logged
        # llm makes an AsyncOpenAI client per prompt; let their finalizers close their
        # sockets while the loop still runs, instead of erroring after asyncio.run ends
        gc.collect()
        await asyncio.sleep(0.2)
        return wall

    return asyncio.run(go())


def promptfoo_cmd(use_npx: bool) -> tuple[list[str], dict[str, str]] | None:
    """The promptfoo command and PATH to use, or None when it is not available."""
    local = PEERS / "node_modules" / ".bin"
    env = dict(os.environ)
    if (local / "promptfoo").exists():
        env["PATH"] = f"{local}{os.pathsep}{env.get('PATH', '')}"  # its node@22 too
        return [str(local / "promptfoo")], env
    if use_npx and shutil.which("npx"):
        return ["npx", "--yes", "promptfoo@latest"], env
    return None


def promptfoo(
    server: FakeServerProcess, tmp: Path, n: int, c: int, use_npx: bool
) -> tuple[float, float | None] | None:
    """(CLI wall seconds, eval seconds it reports) for ``promptfoo eval``, or None."""
    found = promptfoo_cmd(use_npx)
    if found is None:
        return None
    cmd, env = found
    work = tmp / "promptfoo"
    work.mkdir(exist_ok=True)
    (work / "prompt.json").write_text(
        json.dumps([{"role": "system", "content": SYSTEM}, {"role": "user", "content": TEMPLATE}]),
        encoding="utf-8",
    )
    _write_cases(work / "cases.csv", n)
    (work / "promptfooconfig.yaml").write_text(
        "description: bench\nprompts:\n  - file://prompt.json\nproviders:\n"
        "  - id: openai:chat:bench\n    config:\n"
        f"      apiBaseUrl: {server.openai_base_url}\n      apiKey: sk-bench\n"
        "tests: file://cases.csv\n",
        encoding="utf-8",
    )
    env |= {
        "PROMPTFOO_CONFIG_DIR": str(work / "cfg"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "NO_COLOR": "1",
    }
    full = [
        *cmd,
        "eval",
        "-c",
        "promptfooconfig.yaml",
        "--no-cache",
        "-j",
        str(c),
        "--no-progress-bar",
        "--no-table",
    ]
    t0 = time.perf_counter()
    res = subprocess.run(full, cwd=work, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    out = res.stdout + res.stderr
    # promptfoo prints counts with thousands separators: "2,000 passed"
    if res.returncode != 0 or not re.search(rf"\b(?:{n}|{n:,}) passed", out):
        raise RuntimeError(f"promptfoo eval failed ({res.returncode}): {out.strip()[-800:]}")
    m = re.search(r"Duration: (?:(\d+)m )?(\d+)s", out)
    reported = None if m is None else int(m.group(1) or 0) * 60 + int(m.group(2))
    return wall, reported


def main(argv: list[str] | None = None) -> int:
    """Run every available tool on the same task and print the speed-ups."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--npx", action="store_true", help="fall back to npx promptfoo@latest")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    n, c = args.n, args.concurrency
    repeats = 1 if args.quick else args.repeats
    out: dict[str, Any] = {"n": n, "concurrency": c}
    section(f"{n} cases, concurrency {c}, fake server 0 ms, every run logged")
    with tempfile.TemporaryDirectory(prefix="ps-peers-") as t, FakeServerProcess(0.0) as srv:
        tmp = Path(t)
        walls: dict[str, list[float]] = {}
        pf_reported: list[float] = []
        for _ in range(repeats):
            walls.setdefault("promptstate sweep (API)", []).append(promptstate_api(srv, tmp, n, c))
            walls.setdefault("promptstate sweep (CLI)", []).append(promptstate_cli(srv, tmp, n, c))
            got = llm_api(srv, tmp, n, c)
            if got is not None:
                walls.setdefault("llm (async API + log_to_db)", []).append(got)
            pf = promptfoo(srv, tmp, n, c, args.npx)
            if pf is not None:
                walls.setdefault("promptfoo eval (CLI)", []).append(pf[0])
                if pf[1] is not None:
                    pf_reported.append(pf[1])
    best = {k: min(v) for k, v in walls.items()}
    for name, w in best.items():
        print(f"{name:32s} {w:7.2f} s  {w / n * 1000:7.2f} ms/case")
    if pf_reported:
        print(f"(promptfoo's own 'Duration' line, whole seconds: {min(pf_reported):.0f} s)")
    api, cli = best["promptstate sweep (API)"], best["promptstate sweep (CLI)"]
    out |= {"walls": best}
    if "llm (async API + log_to_db)" in best:
        x = best["llm (async API + log_to_db)"] / api
        print(f"RESULT peers: promptstate {x:.1f}x faster than llm (goal >= 5x: {goal(x >= 5)})")
        out["vs_llm"] = x
    else:
        print("SKIP llm: not installed (pip install llm)")
    if "promptfoo eval (CLI)" in best:
        x = best["promptfoo eval (CLI)"] / cli
        x_api = best["promptfoo eval (CLI)"] / api
        print(
            f"RESULT peers: promptstate CLI {x:.1f}x faster than promptfoo CLI "
            f"(goal >= 3x: {goal(x >= 3)}); in-process sweep {x_api:.1f}x"
        )
        out |= {"vs_promptfoo": x, "vs_promptfoo_api": x_api}
    else:
        print(
            "SKIP promptfoo: not installed (npm install --prefix benchmarks/.peers "
            "promptfoo@latest node@22, or pass --npx)"
        )
    save_results("peers", out, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
