"""The send hot path (issue 13): one commit per send, a deferred ``running`` row, and a
sweep's concurrency honoured whatever the provider's own cap.

Nothing here is timed: each test classifies what happened (rows on disk, commits made,
calls in flight), with generous timeouts for a loaded machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import promptstate as ps
from promptstate.providers import OpenAICompatible

try:
    from fake_llm import FakeLLMServer
except ImportError:  # tests/ imported as a package
    from tests.fake_llm import FakeLLMServer


def _session(db: Path) -> ps.Session:
    s = ps.Session(db=str(db))
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")], variables={"x": "hi"}))
    return s


def test_a_quick_send_costs_one_commit_and_is_on_disk_when_reported_done(
    tmp_path: Path,
) -> None:
    s = _session(tmp_path / "one.duckdb")
    inst = s.start("p")

    async def main() -> None:
        await inst.send()  # warm-up: the prompt row is written once per session
        s.runlog.flush()
        for k in range(5):
            before = s.runlog.flushes
            result = await inst.send(variables={"x": f"hello {k}"})
            # committed before send() returned: readable without flushing anything
            rows = s.runlog.sql(
                "SELECT status, response FROM runs WHERE run_id = ?",
                [result.run_id],
                flush=False,
            ).fetchall()
            assert rows == [("success", f"hello {k}")]
            # the 'running' row was superseded unwritten: one commit, not two
            assert s.runlog.flushes - before == 1

    asyncio.run(main())
    s.close()


def test_a_run_still_in_flight_gets_its_running_row_without_any_flush(tmp_path: Path) -> None:
    s = _session(tmp_path / "slow.duckdb")
    inst = s.start("p")

    async def main() -> None:
        task = asyncio.ensure_future(
            inst.send(variables={"x": "a b c d e f g h"}, settings={"echo_delay": 1.0})
        )
        await asyncio.sleep(0)
        rid = s.store.get_state().instances[inst.id].current_request_id
        assert rid is not None
        deadline = time.monotonic() + 60
        status: list[tuple[str]] = []
        while not status and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            status = s.runlog.sql(
                "SELECT status FROM runs WHERE run_id = ?", [rid], flush=False
            ).fetchall()
        assert status == [("running",)]
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        final = s.runs.sql("SELECT status FROM runs WHERE run_id = ?", [rid]).fetchall()
        assert final == [("cancelled",)]

    asyncio.run(main())
    s.close()


KILLED = textwrap.dedent("""
    import asyncio, sys
    import promptstate as ps
    s = ps.Session(db=sys.argv[1])
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")],
                                 settings={"echo_delay": 30}))
    async def main():
        sw = s.sweep("p", {"x": [f"w{i} more words" for i in range(20)]},
                     concurrency=20, progress=False)
        def running():
            return len(sw.in_flight)
        # every call is out and its 'running' row reached the file on its own (no
        # flush() here: it would write them at once)
        while s.runlog.pending or running() < 20 or s.runlog.rows_written < 20:
            await asyncio.sleep(0.01)
        print("go", flush=True)
        await sw
    asyncio.run(main())
""")


def test_kill_9_mid_sweep_leaves_every_run_in_flight_interrupted(tmp_path: Path) -> None:
    db = tmp_path / "killed.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line.strip() == "go"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    with ps.Session(db=str(db)) as s:
        assert s.runlog.recovered == 20
        rows = s.runs.sql("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    assert rows == [("interrupted", 20)]


@pytest.fixture()
def slow_server() -> object:
    server = FakeLLMServer(latency=1.0).start()
    yield server
    server.stop()


def test_sweep_concurrency_overrides_the_providers_cap(
    tmp_path: Path, slow_server: FakeLLMServer
) -> None:
    provider = OpenAICompatible(name="fake", base_url=slow_server.openai_base_url, api_key="sk-x")
    assert provider.max_concurrency < 50  # the default cap the sweep must not be held to
    s = ps.Session(db=str(tmp_path / "c.duckdb"), providers=[provider])
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")], model="fake:m"))

    async def main() -> ps.Sweep:
        return await s.sweep("p", {"x": [f"t{i}" for i in range(100)]}, concurrency=50)

    sw = asyncio.run(main())
    assert sw.errors == 0 and sw.done == 100
    assert slow_server.peak_in_flight == 50  # requests the server saw at once
    s.close()


# -- second pass: per-send CPU -----------------------------------------------------------------


def test_run_ids_are_32_hex_unique_and_cost_no_syscall_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _session(tmp_path / "ids.duckdb")
    rt = s.runtime
    calls: list[int] = []
    real = os.urandom
    monkeypatch.setattr(os, "urandom", lambda n: calls.append(n) or real(n))
    ids = [rt.new_id() for _ in range(2000)]
    iids = [rt.new_instance_id() for _ in range(2000)]
    assert calls == []  # uuid4() would draw 16 random bytes per id
    assert len(set(ids)) == 2000 and len(set(iids)) == 2000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert all(len(i) == 12 and int(i, 16) >= 0 for i in iids)
    # the sends themselves use them: a run id is a session-prefixed counter
    inst = s.start("p")
    run = asyncio.run(_send(inst))
    assert run.run_id[:16] == ids[0][:16] and run.run_id not in ids
    s.close()


async def _send(inst: ps.Instance) -> ps.RunResult:
    return await inst.send()


_CHILD_IDS = textwrap.dedent(
    """
    import os, sys
    from promptstate.engine import ports
    first = ports._new_id()
    pid = os.fork()
    if pid == 0:
        os.write(1, (ports._new_id() + "\\n").encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(first)
    print(ports._new_id())
    """
)


def test_ids_differ_across_processes_and_after_fork() -> None:
    if not hasattr(os, "fork"):
        pytest.skip("no fork on this platform")
    outs = [
        subprocess.run(
            [sys.executable, "-c", _CHILD_IDS],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout.split()
        for _ in range(2)
    ]
    ids = [i for out in outs for i in out]
    assert len(ids) == 6 and len(set(ids)) == 6
    for child, first, after in outs:
        assert first[:16] == after[:16]  # one prefix per process...
        assert child[:16] != first[:16]  # ...and a forked child draws its own
    assert outs[0][1][:16] != outs[1][1][:16]


def test_the_terminal_row_reuses_the_running_rows_json_text_only_when_unchanged() -> None:
    from promptstate.models.run import RunResult, to_row

    running = RunResult(
        run_id="r",
        instance_id="i",
        prompt_id="p",
        prompt_version="v",
        provider="echo",
        model="echo",
        status="running",
        variables={"x": ("hi", "instance")},
        messages=(ps.user("hi"),),
        settings={"temperature": 0.1},
    )
    first = to_row(running)
    assert first["variables"] == '{"x": {"value": "hi", "source": "instance"}}'
    marked = {**first, "variables": "V", "messages": "M", "settings": "S"}
    done = dataclasses.replace(running, status="success", response="hi")
    row = to_row(done, (running, marked))
    assert (row["variables"], row["messages"], row["settings"]) == ("V", "M", "S")
    assert row["status"] == "success" and row["response"] == "hi"
    changed = dataclasses.replace(done, settings={"temperature": 0.2})
    row = to_row(changed, (running, marked))
    assert row["settings"] == '{"temperature": 0.2}' and row["variables"] == "V"
    assert to_row(done) == to_row(done, (running, first))


def test_a_logged_run_has_the_same_json_columns_as_its_result(tmp_path: Path) -> None:
    s = _session(tmp_path / "json.duckdb")
    inst = s.start("p", {"x": "caf\u00e9"})
    run = asyncio.run(_send(inst))
    logged = s.runs.get(run.run_id)
    assert logged is not None and logged.status == "success"
    assert logged.variables == run.variables and logged.messages == run.messages
    assert logged.settings == run.settings
    s.close()


def test_a_superseded_running_row_is_never_built(tmp_path: Path) -> None:
    from promptstate.models.run import RunResult

    s = _session(tmp_path / "lazy.duckdb")
    built: list[str] = []

    def result(run_id: str, status: str) -> RunResult:
        return RunResult(
            run_id=run_id,
            instance_id="i",
            prompt_id="p",
            prompt_version="v",
            provider="echo",
            model="echo",
            status=status,
        )

    def build(run_id: str) -> RunResult:
        built.append(run_id)
        return result(run_id, "running")

    log = s.runlog
    log.write_running("quick", lambda: build("quick"))
    log.write_run(result("quick", "success"))  # before the window ends: replaces it
    log.write_running("slow", lambda: build("slow"))
    log.flush()  # a flush writes what is still deferred: the slow run's row
    assert built == ["slow"]
    rows = log.sql("SELECT run_id, status FROM runs ORDER BY run_id").fetchall()
    assert rows == [("quick", "success"), ("slow", "running")]
    s.close()


# -- the GC while runs are in flight -----------------------------------------------------------


@pytest.fixture()
def default_gc() -> object:
    import gc

    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*saved)


def test_the_gc_trigger_is_raised_while_runs_are_open_and_put_back_after(
    default_gc: None,
) -> None:
    import gc

    from promptstate.engine.gcpause import IN_FLIGHT_THRESHOLD, runs_in_flight

    with runs_in_flight():
        assert gc.get_threshold() == (IN_FLIGHT_THRESHOLD, 10, 10)
        with runs_in_flight():  # a second run (or session, or thread) nests
            pass
        assert gc.get_threshold() == (IN_FLIGHT_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)
    # a user's own choice is left alone: changed meanwhile, set higher, or turned off
    with runs_in_flight():
        gc.set_threshold(1234, 5, 5)
    assert gc.get_threshold() == (1234, 5, 5)
    for mine in ((50_000, 10, 10), (0, 10, 10)):
        gc.set_threshold(*mine)
        with runs_in_flight():
            assert gc.get_threshold() == mine
        assert gc.get_threshold() == mine
    # and an error inside still puts it back
    gc.set_threshold(700, 10, 10)
    with pytest.raises(KeyError), runs_in_flight():
        raise KeyError("x")
    assert gc.get_threshold() == (700, 10, 10)


def test_a_send_and_a_sweep_raise_the_gc_trigger_only_while_in_flight(
    tmp_path: Path, default_gc: None
) -> None:
    import gc

    from promptstate.engine.gcpause import IN_FLIGHT_THRESHOLD

    server = FakeLLMServer().start()
    provider = OpenAICompatible(name="fake", base_url=server.openai_base_url, api_key="sk-x")
    s = ps.Session(db=str(tmp_path / "gc.duckdb"), providers=[provider])
    s.prompts.register(
        ps.Prompt(id="p", messages=[ps.user("{{x}}")], model="fake:m+fault:drip=0.1")
    )
    inst = s.start("p")

    async def seen_while(job: asyncio.Future[object]) -> set[int]:
        seen = set()
        while not job.done():
            seen.add(gc.get_threshold()[0])
            await asyncio.sleep(0.01)
        await job
        return seen

    async def main() -> None:
        seen = await seen_while(asyncio.ensure_future(inst.send(variables={"x": "a b c"})))
        assert IN_FLIGHT_THRESHOLD in seen
        assert gc.get_threshold() == (700, 10, 10)
        sweep = asyncio.ensure_future(s.sweep("p", {"x": ["a b", "c d"]}, progress=False))
        assert IN_FLIGHT_THRESHOLD in await seen_while(sweep)
        assert gc.get_threshold() == (700, 10, 10)

    try:
        asyncio.run(main())
    finally:
        s.close()
        server.stop()
