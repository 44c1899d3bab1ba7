"""Instances, sends, live-state reads, scoped variables and the run log (echo provider)."""

from __future__ import annotations

import asyncio
import json
import warnings
from typing import Any

import pytest

import promptstate as ps
from promptstate.core.selectors import select_display_messages, select_merged_variables

from .conftest import SUMMARIZE

pytestmark = pytest.mark.anyio


def _rows(
    session: ps.Session, sql: str = "SELECT status, response, variables, messages FROM runs"
) -> list[Any]:
    return session.runs.sql(sql).fetchall()


async def test_edit_then_send_uses_new_value(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "draft", "user_name": "Ann"})
    inst.set_variable("text", "final")
    run = await inst.send()
    assert run.status == "success"
    assert run.response == "Summarize for Ann: final"
    assert run.variables["text"] == ("final", "instance")
    ((status, _response, variables, messages),) = _rows(session)
    assert status == "success"
    assert json.loads(variables)["text"] == {"value": "final", "source": "instance"}
    assert json.loads(messages) == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Summarize for Ann: final"},
    ]


async def test_edit_during_in_flight_send_leaves_that_run_as_started(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "one two three", "user_name": "Ann"})
    task = asyncio.create_task(inst.send(settings={"echo_delay": 0.02}))
    while inst.status != "running":
        await asyncio.sleep(0.005)
    inst.set_variable("text", "changed")
    first = await task
    assert first.response == "Summarize for Ann: one two three"
    assert first.variables["text"] == ("one two three", "instance")
    second = await inst.send()
    assert second.response == "Summarize for Ann: changed"
    rows = _rows(session, "SELECT response FROM runs ORDER BY started_at")
    assert [r[0] for r in rows] == [first.response, second.response]


async def test_streaming_is_visible_in_the_store_and_final_text_exact(session: ps.Session) -> None:
    inst = session.start(
        "summarize", variables={"text": " ".join(f"w{i}" for i in range(40)), "user_name": "A"}
    )
    seen: list[str] = []
    unsub = session.store.subscribe(lambda: seen.append(inst.messages[-1].content))
    run = await inst.send(settings={"echo_delay": 0.005})
    unsub()
    partials = {s for s in seen if s and s != run.response}
    assert partials, "partial text should reach the store while streaming"
    assert all(run.response.startswith(p) for p in partials)
    assert len(seen) < 40 + 10, "chunks are coalesced, not one action per token"
    assert run.ttft_ms is not None and run.latency_ms is not None and run.ttft_ms <= run.latency_ms
    assert run.output_tokens == 43


async def test_two_instances_of_one_prompt_fetch_once_and_stay_independent(
    session: ps.Session,
) -> None:
    a = session.start("summarize", variables={"text": "A", "user_name": "x"})
    b = session.start("summarize", variables={"text": "B", "user_name": "y"})
    assert session.prompts.fetch_count == {"summarize": 1}
    a.set_variable("text", "A2")
    assert b.variables["text"].value == "B"
    ra, rb = await asyncio.gather(a.send(), b.send())
    assert (ra.response, rb.response) == ("Summarize for x: A2", "Summarize for y: B")
    session.start("summarize", variables={"text": "C", "user_name": "z"}, refresh=True)
    assert session.prompts.fetch_count == {"summarize": 2}


async def test_missing_variables_raise_naming_every_one_and_log_nothing(
    session: ps.Session,
) -> None:
    session.prompts.register(
        ps.Prompt(id="two", messages=[ps.user("{{a}} {{b}} {{c}}")], variables={"c": "ok"})
    )
    inst = session.start("two")
    with pytest.raises(ps.MissingVariablesError) as info:
        await inst.send()
    assert info.value.missing == ("a", "b")
    assert "a, b" in str(info.value)
    assert session.runs.count() == 0
    assert inst.status == "idle"


def test_unused_explicit_variable_warns(session: ps.Session) -> None:
    with pytest.warns(ps.UnusedVariableWarning, match="tpyo"):
        session.start("summarize", variables={"text": "x", "tpyo": "y"})
    inst = session.start("summarize", variables={"text": "x"})
    with pytest.warns(ps.UnusedVariableWarning, match="nope"):
        inst.set_variable("nope", "1")


def test_unknown_prompt_and_instance(session: ps.Session) -> None:
    with pytest.raises(ps.UnknownPromptError, match="summarize"):
        session.start("nope")
    with pytest.raises(ps.UnknownInstanceError):
        session.instance("missing")
    before = session.store.get_state()
    with pytest.raises(ps.UnknownInstanceError):
        ps.Instance(session, "missing").set_variable("text", "x")
    assert session.store.get_state() is before


def test_bad_variable_names_and_values(session: ps.Session) -> None:
    inst = session.start("summarize")
    before = session.store.get_state()
    with pytest.raises(ps.VariableError):
        inst.set_variable("bad name\x00", "x")
    with pytest.raises(ps.VariableError):
        inst.set_variable("text", object())
    assert session.store.get_state() is before
    inst.set_variable("text", 3)
    assert inst.variables["text"] == ("3", "instance")
    inst.set_variable("text", {"k": [1, 2]})
    assert inst.variables["text"].value == '{"k": [1, 2]}'


async def test_multi_turn_conversation(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "t", "user_name": "u"})
    await inst.send()
    r2 = await inst.send("more please")
    assert r2.response == "more please"
    assert [m.role for m in r2.messages] == ["system", "user", "assistant", "user"]
    assert [m.role for m in inst.messages] == ["system", "user", "assistant", "user", "assistant"]
    r3 = await inst.send()  # running the prompt again starts a fresh single turn
    assert [m.role for m in r3.messages] == ["system", "user"]
    assert [m.role for m in inst.messages] == ["system", "user", "assistant"]


async def test_cancel_keeps_partial_text_and_logs_cancelled(session: ps.Session) -> None:
    inst = session.start(
        "summarize", variables={"text": " ".join(["word"] * 200), "user_name": "u"}
    )
    task = asyncio.create_task(inst.send(settings={"echo_delay": 0.01}))
    while not (inst.last_run and inst.last_run.response):
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)
    assert inst.cancel() is True
    run = await task
    assert run.status == "cancelled"
    assert 0 < len(run.response) < len("Summarize for u: " + " ".join(["word"] * 200))
    ((status, response),) = _rows(session, "SELECT status, response FROM runs")
    assert (status, response) == ("cancelled", run.response)
    assert inst.status == "cancelled"
    assert inst.cancel() is False


async def test_cancelling_the_task_ends_the_run_cancelled(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "a b c d e f g h", "user_name": "u"})
    task = asyncio.create_task(inst.send(settings={"echo_delay": 0.05}))
    await asyncio.sleep(0.08)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    session.runs.flush()
    assert _rows(session, "SELECT status FROM runs") == [("cancelled",)]


async def test_busy_instance_raises(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "a b c", "user_name": "u"})
    task = asyncio.create_task(inst.send(settings={"echo_delay": 0.02}))
    await asyncio.sleep(0.01)
    with pytest.raises(ps.InstanceBusyError):
        await inst.send()
    await task


async def test_provider_error_ends_run_as_error_with_message(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "x", "user_name": "u"})
    run = await inst.send(settings={"echo_error": "boom"})
    assert run.status == "error" and "boom" in (run.error or "")
    assert inst.status == "error"
    assert _rows(session, "SELECT status, error FROM runs")[0][0] == "error"


async def test_every_tracked_send_leaves_exactly_one_terminal_row(session: ps.Session) -> None:
    insts = [
        session.start("summarize", variables={"text": f"t{i}", "user_name": "u"}) for i in range(30)
    ]
    untracked = session.start(
        "summarize", variables={"text": "x", "user_name": "u"}, track_in_runs=False
    )

    async def one(i: int, inst: ps.Instance) -> ps.RunResult:
        if i % 3 == 1:
            return await inst.send(settings={"echo_error": "bad"})
        if i % 3 == 2:
            t = asyncio.create_task(inst.send(settings={"echo_delay": 0.05}))
            await asyncio.sleep(0.01)
            inst.cancel()
            return await t
        return await inst.send()

    results = await asyncio.gather(*(one(i, x) for i, x in enumerate(insts)))
    await untracked.send()
    rows = dict(_rows(session, "SELECT run_id, status FROM runs"))
    assert len(rows) == 30
    assert {r.run_id: r.status for r in results} == rows
    assert sorted(set(rows.values())) == ["cancelled", "error", "success"]
    assert session.store.get_state().runs  # latest per instance kept
    from promptstate.core.selectors import select_runs_in_flight

    assert select_runs_in_flight(session.store.get_state()) == ()


async def test_scoped_variable_precedence_with_provenance(tmp_path: Any) -> None:
    db = str(tmp_path / "scoped.duckdb")
    with ps.Session(db=db, user_id="u1", org_id="o1", project_id="p1") as setup:
        for scope in ("org", "project", "user"):
            setup.set_scoped_variable(scope, "who", f"{scope}-value")
        setup.set_scoped_variable("org", "org_only", "from-org")
        setup.set_scoped_variable("project", "proj_only", "from-project")
        setup.set_scoped_variable("user", "unused_by_prompt", "fine")
    s = ps.Session(db=db, user_id="u1", org_id="o1", project_id="p1")
    s.prompts.register(
        ps.Prompt(
            id="p",
            messages=[ps.user("{{who}} {{org_only}} {{proj_only}} {{dflt}}")],
            variables={"dflt": "d", "who": "default-who"},
        )
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scoped variables a prompt does not use are fine
        inst = s.start("p")
    v = inst.variables
    assert v["who"] == ("user-value", "user")
    assert v["org_only"] == ("from-org", "org")
    assert v["proj_only"] == ("from-project", "project")
    assert v["dflt"] == ("d", "default")
    assert "unused_by_prompt" not in v
    inst.set_variable("who", "mine")
    assert inst.variables["who"] == ("mine", "instance")
    inst.unset_variable("who")
    assert inst.variables["who"] == ("user-value", "user")
    run = await inst.send()
    assert run.response == "user-value from-org from-project d"
    other = ps.Session(db=None, user_id="nobody")
    other.prompts.register(s.prompts.get("p"))
    assert other.start("p").variables["who"] == ("default-who", "default")
    s.close()


def test_selectors_are_memoized_per_instance(session: ps.Session) -> None:
    a = session.start("summarize", variables={"text": "a"})
    b = session.start("summarize", variables={"text": "b"})
    st = session.store.get_state()
    assert select_merged_variables(st, a.id) is select_merged_variables(st, a.id)
    assert select_display_messages(st, a.id) is select_display_messages(st, a.id)
    va, vb = select_merged_variables(st, a.id), select_display_messages(st, b.id)
    b.set_variable("text", "b2")
    st2 = session.store.get_state()
    assert select_merged_variables(st2, a.id) is va, "a change to b leaves a's selector result"
    assert select_display_messages(st2, b.id) is not vb


def test_display_messages_render_leniently(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "hello"})
    assert inst.messages[1].content == "Summarize for {{ user_name }}: hello"


def test_instances_list_and_close(session: ps.Session) -> None:
    a = session.start("summarize")
    b = session.start("summarize")
    assert session.instances == [a, b]
    a.close()
    assert session.instances == [b]
    with pytest.raises(ps.UnknownInstanceError):
        a.status  # noqa: B018


async def test_response_cache_hits_are_logged(tmp_path: Any) -> None:
    s = ps.Session(db=str(tmp_path / "c.duckdb"), cache=True)
    s.prompts.register(SUMMARIZE)
    inst = s.start("summarize", variables={"text": "x", "user_name": "u"})
    r1 = await inst.send()
    r2 = await inst.send()
    assert not r1.cache_hit and r2.cache_hit
    assert r1.cache_key == r2.cache_key and r1.cache_key
    assert r2.latency_ms == 0.0 and r2.response == r1.response
    err = await inst.send(settings={"echo_error": "x"})
    assert err.status == "error"
    again = await inst.send(settings={"echo_error": "x"})
    assert again.status == "error" and not again.cache_hit  # errors are never cached
    rows = s.runs.sql("SELECT cache_hit, count(*) FROM runs GROUP BY ALL ORDER BY 1").fetchall()
    assert rows == [(False, 3), (True, 1)]
    s.close()


async def test_cost_from_prices(tmp_path: Any) -> None:
    s = ps.Session(prices={"echo:echo": (1.0, 2.0)})
    s.prompts.register(SUMMARIZE)
    run = await s.start("summarize", variables={"text": "a b", "user_name": "u"}).send()
    assert run.cost_usd == pytest.approx((run.input_tokens * 1.0 + run.output_tokens * 2.0) / 1e6)
    s2 = ps.Session()
    s2.prompts.register(SUMMARIZE)
    assert (
        await s2.start("summarize", variables={"text": "a", "user_name": "u"}).send()
    ).cost_usd is None
