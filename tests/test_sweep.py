"""Sweeps over variables x models, against echo and the fake HTTP server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

import promptstate as ps
from promptstate.providers import OpenAICompatible, RetryPolicy

from .fake_llm import FakeLLMServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture
def s(tmp_path: Path, server: FakeLLMServer) -> Iterator[ps.Session]:
    session = ps.Session(
        db=str(tmp_path / "sweep.duckdb"),
        providers=[
            OpenAICompatible(
                name="fake",
                base_url=server.openai_base_url,
                retry=RetryPolicy(max_attempts=2, base_delay=0.01),
            )
        ],
    )
    session.prompts.register(ps.Prompt(id="t", messages=[ps.user("{{animal}} says {{sound}}")]))
    yield session
    session.close()


async def test_cartesian_sweep_over_models(s: ps.Session) -> None:
    sw = s.sweep(
        "t",
        {"animal": ["cat", "dog"], "sound": ["hi", "yo", "hey"]},
        models=["echo", "fake:m1"],
        concurrency=4,
        progress=False,
    )
    await sw
    assert len(sw.cells) == 12 and sw.done == 12 and sw.errors == 0
    df = sw.df()
    assert len(df) == 12
    assert set(df.columns) >= {
        "animal",
        "sound",
        "model",
        "response",
        "status",
        "latency_ms",
        "cost_usd",
    }
    assert (df["response"] == df["animal"] + " says " + df["sound"]).all()
    assert sorted(set(df["model"])) == ["echo", "m1"]
    assert s.runs.sql("SELECT count(DISTINCT sweep_id), count(*) FROM runs").fetchall() == [(1, 12)]
    assert len(s.store.get_state().instances) == 0  # cells close their instances


async def test_list_of_dicts_repeat_and_failures_do_not_abort(s: ps.Session) -> None:
    rows = [{"animal": "cow", "sound": "moo"}, {"animal": "owl", "sound": "hoot"}]
    sw = await s.sweep(
        "t", rows, models=["fake:ok", "fake:bad+fault:500"], repeat=2, progress=False
    )
    statuses = sorted(r.status for r in sw.results if r)
    assert statuses == ["error"] * 4 + ["success"] * 4
    assert sw.errors == 4 and sw.done == 8


async def test_cancel_marks_queued_work_cancelled(s: ps.Session) -> None:
    sw = s.sweep(
        "t",
        {"animal": [f"a{i}" for i in range(20)], "sound": ["x"]},
        models=["fake:slow+fault:delay=0.3"],
        concurrency=2,
        progress=False,
    )
    await asyncio.sleep(0.15)
    sw.cancel()
    await sw
    rows = dict(s.runs.sql("SELECT status, count(*) FROM runs GROUP BY ALL").fetchall())
    assert sum(rows.values()) == 20, rows
    assert rows.get("cancelled", 0) >= 18
    assert "running" not in rows
    from promptstate.core.selectors import select_runs_in_flight

    assert select_runs_in_flight(s.store.get_state()) == ()


async def test_progress_bar_and_bad_input(
    s: ps.Session, capsys: pytest.CaptureFixture[str]
) -> None:
    await s.sweep("t", {"animal": ["a"], "sound": ["b"]}, progress=True)
    assert "sweep t" in capsys.readouterr().err
    with pytest.raises(ps.UnknownProviderError):
        s.sweep("t", {"animal": ["a"], "sound": ["b"]}, models=["nope:x"])
    with pytest.raises(ps.UnknownPromptError):
        s.sweep("missing", {})
    with pytest.raises(ps.VariableError):
        s.sweep("t", {"animal": "notalist"})


async def test_missing_variable_cells_count_as_errors(s: ps.Session) -> None:
    sw = await s.sweep("t", [{"animal": "a"}], progress=False)
    assert sw.errors == 1 and sw.results == [None]
    assert isinstance(s.task_errors[-1], ps.MissingVariablesError)


async def test_listeners_see_every_cell_and_cancel_from_another_thread(s: ps.Session) -> None:
    import threading

    seen: list[ps.RunResult | None] = []
    statuses: list[str] = []
    sw = s.sweep("t", [{"animal": "a", "sound": "b"}, {"animal": "only"}], progress=False)
    sw.subscribe(lambda cell: (seen.append(cell.result), statuses.append(cell.status)))
    await sw
    assert sorted(statuses) == ["error", "success"] and sw.finished
    assert any(c.error and "sound" in c.error for c in sw.cells)
    slow = s.sweep(
        "t",
        {"animal": [f"a{i}" for i in range(10)], "sound": ["x"]},
        models=["fake:slow+fault:delay=0.3"],
        concurrency=2,
        progress=False,
    )
    ended: list[bool] = []
    slow.add_done_callback(lambda _sw: ended.append(True))
    await asyncio.sleep(0.1)
    t = threading.Thread(target=slow.cancel)
    t.start()
    t.join()
    await slow
    assert ended == [True] and slow.cancelled >= 8 and slow.repeat == 1
