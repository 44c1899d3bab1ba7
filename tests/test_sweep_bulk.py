"""The sweep's bulk path: cells rendered in batches inside the action that records them."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promptstate as ps
from promptstate.core.actions import (
    CellEnd,
    SentCell,
    SweepCellsFinished,
    SweepCellsSent,
)
from promptstate.core.codec import action_from_json, action_to_json
from promptstate.engine.send import state_hash
from promptstate.errors import StateImportError
from promptstate.models import run as run_model
from promptstate.models.values import ChatMessage
from promptstate.providers import OpenAICompatible

from .fake_llm import FakeLLMServer

PROMPT = ps.Prompt(
    id="b",
    messages=[ps.system("You are {{who}}."), ps.user("Tell {{topic}}")],
    variables={"who": "terse"},
)


def _session(tmp_path: Path, **kw: object) -> ps.Session:
    s = ps.Session(db=str(tmp_path / "bulk.duckdb"), **kw)  # type: ignore[arg-type]
    s.prompts.register(PROMPT)
    return s


def test_cells_go_out_in_batches_and_each_run_is_what_its_action_rendered(
    tmp_path: Path,
) -> None:
    s = _session(tmp_path)

    async def main() -> ps.Sweep:
        return await s.sweep(
            "b", {"topic": [f"t{i}" for i in range(300)]}, concurrency=64, progress=False
        )

    sw = asyncio.run(main())
    assert sw.done == 300
    sent = [r for r in s.devtools.records() if r.type == SweepCellsSent.type]
    assert 1 < len(sent) < 300  # batches, not one action per cell
    cells = {c.run_id: (r.index, c) for r in sent for c in r.action.cells}
    assert len(cells) == 300
    rows = s.runs.sql(
        "SELECT run_id, action_index, messages, status, response FROM runs"
    ).fetchall()
    assert len(rows) == 300
    for run_id, action_index, messages, status, response in rows:
        index, cell = cells[run_id]
        assert action_index == index  # the log points at the action that rendered it
        assert json.loads(messages) == [
            {"role": m.role, "content": m.content} for m in cell.messages
        ]
        assert status == "success" and response == cell.messages[-1].content
    s.close()


def test_a_cell_renders_the_scoped_variables_of_the_instant_it_is_sent(
    tmp_path: Path,
) -> None:
    # cells are sent two at a time and take a while: change a scoped variable between
    # sends; each cell must carry exactly the value the state had when it was sent
    s = _session(tmp_path, user_id="u")
    s.prompts.register(
        ps.Prompt(
            id="slow",
            messages=[ps.system("You are {{who}}."), ps.user("Tell {{topic}} now")],
            variables={"who": "terse", "topic": ""},
            settings={"echo_delay": 0.01},
        )
    )

    async def main() -> ps.Sweep:
        sw = s.sweep("slow", {"topic": [f"t{i}" for i in range(12)]}, concurrency=2, progress=False)
        for i in range(40):
            s.set_scoped_variable("user", "who", f"voice {i}")
            await asyncio.sleep(0.01)
            if sw.finished:
                break
        return await sw

    sw = asyncio.run(main())
    assert sw.done == 12 and sw.errors == 0
    seen = set()
    for cell in sw.cells:
        assert cell.result is not None
        before = s.devtools.state_at(cell.result.action_index - 1)  # the state it applied to
        who = before.scoped.user.get("who", "terse")
        seen.add(who)
        assert cell.result.messages[0].content == f"You are {who}."
        assert cell.result.variables["who"] == (who, "user" if who != "terse" else "default")
    assert len(seen) > 1  # the change did land between cells
    s.close()


def test_a_finished_sweep_leaves_the_store_and_keeps_its_counts(tmp_path: Path) -> None:
    s = _session(tmp_path)

    async def main() -> list[ps.Sweep]:
        out = []
        for _ in range(30):
            out.append(await s.sweep("b", [{"topic": "x"}, {"topic": "y"}, {}], progress=False))
        return out

    sweeps = asyncio.run(main())
    assert len(s.store.get_state().sweeps) == 0  # nothing per sweep stays in the state
    for sw in sweeps:
        assert (sw.done, sw.errors, sw.cancelled) == (3, 1, 0)
        assert [c.status for c in sw.cells] == ["success", "success", "error"]
        assert "MissingVariablesError" in (sw.cells[2].error or "")
    s.close()


def test_cancelling_a_sweep_over_http_ends_every_cell_with_a_row(tmp_path: Path) -> None:
    with FakeLLMServer(latency=30.0) as server:
        s = _session(
            tmp_path,
            providers=[OpenAICompatible(name="fake", base_url=server.openai_base_url)],
        )

        async def main() -> ps.Sweep:
            sw = s.sweep(
                "b",
                {"topic": [f"t{i}" for i in range(40)]},
                models=["fake:m"],
                concurrency=8,
                progress=False,
            )
            while len(sw.in_flight) < 8:  # eight calls out, the rest queued
                await asyncio.sleep(0.01)
            sw.cancel()
            return await sw

        sw = asyncio.run(main())
        assert sw.done == 40 and sw.cancelled == 40
        rows = s.runs.sql("SELECT status, count(*) FROM runs GROUP BY ALL").fetchall()
        assert rows == [("cancelled", 40)]
        assert all(c.result is not None and c.result.status == "cancelled" for c in sw.cells)
        s.close()


def test_interrupting_the_await_still_ends_every_cell_in_the_log(tmp_path: Path) -> None:
    s = _session(tmp_path)
    s.prompts.register(
        ps.Prompt(id="slow", messages=[ps.user("{{topic}} a b c")], settings={"echo_delay": 5})
    )

    async def main() -> None:
        sw = s.sweep("slow", {"topic": [f"t{i}" for i in range(30)]}, concurrency=5, progress=False)
        task = asyncio.ensure_future(sw.wait())
        while len(sw.in_flight) < 5:
            await asyncio.sleep(0.01)
        task.cancel()  # a KeyboardInterrupt in the awaiting cell
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    rows = s.runs.sql("SELECT status, count(*) FROM runs GROUP BY ALL").fetchall()
    assert rows == [("cancelled", 30)]
    s.close()


def test_an_echo_error_ends_its_cell_error_with_the_text_so_far(tmp_path: Path) -> None:
    s = _session(tmp_path)

    async def main() -> ps.Sweep:
        return await s.sweep("b", [{"topic": "x"}], settings={"echo_error": "boom"}, progress=False)

    sw = asyncio.run(main())
    res = sw.cells[0].result
    assert res is not None and res.status == "error" and res.error_type == "ProviderError"
    assert res.response == "Tell x" and "boom" in (res.error or "")
    with pytest.raises(ps.ProviderError):
        res.raise_for_status()
    s.close()


def test_sweep_actions_round_trip_through_the_devtools_codec() -> None:
    cell = SentCell(
        index=3,
        run_id="r" * 32,
        instance_id="i" * 12,
        provider="echo",
        model="echo",
        variables=(("topic", "x", "instance"),),
        messages=(ChatMessage("user", "Tell x"),),
        settings={"temperature": 0.5},
        state_hash="h" * 16,
    )
    sent = SweepCellsSent(
        sweep_id="s", prompt_id="b", prompt_version="v", at=1.0, cells=(cell,), action_index=7
    )
    ended = SweepCellsFinished(sweep_id="s", cells=(CellEnd(index=3, status="success"),))
    for action in (sent, ended):
        payload = json.loads(json.dumps(action_to_json(action)))
        assert action_from_json(action.type, payload) == action
    bad = json.loads(json.dumps(action_to_json(sent)))
    bad["cells"][0]["index"] = "3"
    with pytest.raises(StateImportError, match=r"cells\[0\]\.index"):
        action_from_json(sent.type, bad)
    bad = json.loads(json.dumps(action_to_json(sent)))
    bad["cells"][0]["extra"] = 1
    with pytest.raises(StateImportError, match="unexpected"):
        action_from_json(sent.type, bad)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=300, deadline=None)
@given(
    variables=st.lists(st.tuples(_text, _text, _text), max_size=4),
    messages=st.lists(st.tuples(_text, _text), max_size=3),
    version=_text,
)
def test_the_fast_json_texts_equal_json_dumps(
    variables: list[tuple[str, str, str]], messages: list[tuple[str, str]], version: str
) -> None:
    msgs = tuple(ChatMessage(r, c) for r, c in messages)
    pairs = sorted((n, v) for n, v, _ in variables)
    ref = json.dumps(
        {"v": pairs, "m": [(m.role, m.content) for m in msgs], "p": version}, ensure_ascii=False
    )
    assert (
        state_hash(tuple(variables), msgs, version)
        == (hashlib.sha256(ref.encode()).hexdigest()[:16])
    )
    vd = {n: (v, s) for n, v, s in variables}
    row = run_model.to_row(ps.RunResult(variables=vd, messages=msgs, settings={"k": version}))
    assert row["variables"] == json.dumps(
        {n: {"value": v, "source": s} for n, (v, s) in vd.items()}, ensure_ascii=False
    )
    assert row["messages"] == json.dumps(
        [{"role": m.role, "content": m.content} for m in msgs], ensure_ascii=False
    )
    assert row["settings"] == json.dumps({"k": version}, ensure_ascii=False)


def test_make_result_is_the_dataclass_constructor() -> None:
    kw = {"run_id": "r", "status": "success", "response": "hi", "latency_ms": 1.5}
    assert run_model.make_result(kw) == ps.RunResult(**kw)  # type: ignore[arg-type]
    fresh = run_model.make_result({"run_id": "a"})
    assert fresh.variables == {} and fresh.variables is not run_model.make_result({}).variables
    with pytest.raises(TypeError, match="nope"):
        run_model.make_result({"nope": 1})


def test_a_new_prompt_version_mid_sweep_is_fetched_and_used_by_later_cells(
    tmp_path: Path,
) -> None:
    s = _session(tmp_path)
    old = ps.Prompt(id="v", messages=[ps.user("old {{topic}} a b")], settings={"echo_delay": 0.01})
    new = ps.Prompt(id="v", messages=[ps.user("new {{topic}} a b")], settings={"echo_delay": 0.01})
    s.prompts.register(old)

    async def main() -> ps.Sweep:
        sw = s.sweep("v", {"topic": [f"t{i}" for i in range(10)]}, concurrency=2, progress=False)
        while sw.done < 2:
            await asyncio.sleep(0.005)
        s.prompts.register(new)  # drops the cached version: the next batch fetches it
        return await sw

    sw = asyncio.run(main())
    assert sw.errors == 0 and sw.done == 10
    versions = [c.result.prompt_version for c in sw.cells if c.result is not None]
    assert versions[0] == old.version and versions[-1] == new.version
    for c in sw.cells:
        assert c.result is not None
        text = "old" if c.result.prompt_version == old.version else "new"
        assert c.result.response.startswith(text)
    logged = s.runs.sql("SELECT count(*) FROM prompts WHERE prompt_id = 'v'").fetchall()
    assert logged == [(2,)]  # both versions a run used are in the log
    s.close()


def test_a_sweep_whose_log_closes_under_it_still_ends_every_cell(tmp_path: Path) -> None:
    s = _session(tmp_path)
    s.prompts.register(
        ps.Prompt(id="slow", messages=[ps.user("{{topic}} a")], settings={"echo_delay": 0.01})
    )

    async def main() -> ps.Sweep:
        sw = s.sweep("slow", {"topic": [f"t{i}" for i in range(20)]}, concurrency=2, progress=False)
        while sw.done < 2:
            await asyncio.sleep(0.005)
        s.close()  # the run log goes away mid-sweep
        return await asyncio.wait_for(sw.wait(), timeout=120)  # must not hang

    sw = asyncio.run(main())
    assert sw.done == 20
    assert all(c.status in ("success", "error") for c in sw.cells)
    assert any("RunLogError" in (c.error or "") for c in sw.cells)


def test_an_empty_sweep_finishes_at_once(tmp_path: Path) -> None:
    s = _session(tmp_path)

    async def main() -> ps.Sweep:
        return await s.sweep("b", [], progress=False)

    sw = asyncio.run(main())
    assert (sw.done, sw.errors, sw.cells, sw.finished) == (0, 0, [], True)
    s.close()


def test_a_cached_sweep_answers_repeated_cells_from_the_cache(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        s = _session(
            tmp_path,
            cache=True,
            providers=[OpenAICompatible(name="fake", base_url=server.openai_base_url)],
        )
        rows = [{"topic": f"t{i}"} for i in range(6)]

        async def main() -> tuple[ps.Sweep, ps.Sweep]:
            first = await s.sweep("b", rows, models=["fake:m"], progress=False)
            again = await s.sweep("b", rows, models=["fake:m"], progress=False)
            return first, again

        calls = len(server.requests)
        first, again = asyncio.run(main())
        assert len(server.requests) - calls == 6  # the second sweep called nothing
        for a, b in zip(first.cells, again.cells, strict=True):
            assert a.result is not None and b.result is not None
            assert (a.result.cache_hit, b.result.cache_hit) == (False, True)
            assert b.result.response == a.result.response and b.result.latency_ms == 0.0
            assert b.result.cache_key == a.result.cache_key is not None
        s.close()


def test_a_failing_response_cache_never_wedges_a_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _session(tmp_path, cache=True)

    def broken(key: str, result: ps.RunResult) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(s.runtime.cache, "store", broken)

    async def main() -> ps.Sweep:
        sw = s.sweep("b", {"topic": [f"t{i}" for i in range(20)]}, progress=False)
        return await asyncio.wait_for(sw.wait(), timeout=120)

    sw = asyncio.run(main())
    assert sw.done == 20 and sw.errors == 0  # every run logged, only the cache missed them
    assert s.runs.count() == 20
    s.close()
