"""Issue 11: a send is a snapshot taken at the click.

One test per failure the issue lists. Each sends through the public API (or a widget's
comm message) with the offline ``echo`` provider, reads the logged row back from the
run log, and compares it with what the user did. On the old behaviour (rendering when
the task ran on the loop, a devtools jump left in place, follow-ups re-rendered from
the live variables) each of them sends something other than what was clicked.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest

import promptstate as ps
from promptstate.errors import ProviderConfigError, VariableError
from promptstate.models.values import ChatMessage
from promptstate.widgets import PromptRunner
from tests.test_widgets import FakeFrontEnd, RecordingComm

pytestmark = pytest.mark.anyio

SYSTEM = "You are terse."


def render(text: str, user_name: str = "Ann") -> str:
    return f"Summarize for {user_name}: {text}"


def make_session(tmp_path: Path, delay: float = 0.0) -> ps.Session:
    s = ps.Session(db=str(tmp_path / "runs.duckdb"))
    s.prompts.register(
        ps.Prompt(
            id="summarize",
            messages=[ps.system(SYSTEM), ps.user("Summarize for {{user_name}}: {{text}}")],
            variables={"text": "", "user_name": "Ann"},
            model="echo",
            settings={"echo_delay": delay} if delay else {},
        )
    )
    return s


def pairs(messages: Any) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in messages]


def logged(s: ps.Session, run_id: str) -> tuple[list[tuple[str, str]], dict[str, Any], str]:
    """(messages, variables, status) of the ``runs`` row, read back from DuckDB."""
    msgs, variables, status = s.runs.sql(
        "SELECT messages, variables, status FROM runs WHERE run_id = ?", [run_id]
    ).fetchall()[0]
    return [(m["role"], m["content"]) for m in json.loads(msgs)], json.loads(variables), status


def from_thread(fn: Any, *args: Any) -> None:
    """Run ``fn`` on another thread and wait for it (the loop does not run meanwhile)."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    assert not errors, errors


async def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


@pytest.fixture
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    yield


# -- (a) the click -> render gap ----------------------------------------------------------


async def test_send_soon_sends_the_click_values_not_a_later_edit(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    fut = inst.send_soon(variables={"text": "A"})
    # Another thread edits before the task has had a chance to run on this loop.
    from_thread(inst.set_variable, "text", "B")
    result = await asyncio.wrap_future(fut)
    assert result.status == "success"
    msgs, variables, _ = logged(s, result.run_id)
    assert msgs == [("system", SYSTEM), ("user", render("A"))]
    assert variables["text"] == {"value": "A", "source": "instance"}
    assert result.response == render("A")
    assert inst.variables["text"].value == "B"  # the later edit is live, for the next send
    s.close()


async def test_widget_send_carries_the_unsynced_value_despite_a_later_edit(
    tmp_path: Path, recording_comm: None
) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(PromptRunner(inst))
    # The click carries the value the debounce never sent; code edits right after.
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {"text": "A"}})
    from_thread(inst.set_variable, "text", "B")
    await wait_for(lambda: len(fe.replies()) == 1)
    (done,) = fe.replies()
    assert done["ok"] and done["status"] == "success"
    msgs, variables, _ = logged(s, done["run_id"])
    assert msgs == [("system", SYSTEM), ("user", render("A"))]
    assert variables["text"]["value"] == "A"
    fe.widget.close()
    s.close()


async def test_send_coroutine_awaited_later_sends_the_call_time_state(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "A"})
    pending = inst.send()  # created now, awaited after an edit
    from_thread(inst.set_variable, "text", "B")
    inst.set_variable("user_name", "Bob")
    result = await pending
    msgs, variables, _ = logged(s, result.run_id)
    assert msgs == [("system", SYSTEM), ("user", render("A"))]
    assert variables["user_name"] == {"value": "Ann", "source": "default"}
    s.close()


# -- (b) time travel --------------------------------------------------------------------------


async def test_send_while_viewing_the_past_sends_the_present(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    dev = s.devtools
    inst = s.start("summarize", variables={"text": "draft"})
    inst.set_variable("text", "past value")
    past = dev.last_index
    inst.set_variable("text", "present value")
    dev.jump(past)
    assert dev.viewing_past and inst.variables["text"].value == "past value"

    result = await inst.send()
    assert not dev.viewing_past
    msgs, variables, _ = logged(s, result.run_id)
    assert msgs == [("system", SYSTEM), ("user", render("present value"))]
    # the logged action index names the send, and the state it produced holds the request
    assert result.action_index is not None
    action = dev.action_at(result.action_index)
    assert action.type == "runs/execute_pending"
    assert action.request_id == result.run_id  # type: ignore[attr-defined]
    run = dev.state_at(result.action_index).runs[result.run_id]
    assert pairs(run.messages) == msgs
    assert {n: {"value": v, "source": src} for n, v, src in run.variables} == variables
    assert inst.variables["text"].value == "present value"
    s.close()


async def test_refused_send_while_viewing_the_past_leaves_the_store_live(tmp_path: Path) -> None:
    # A send that refuses (here: busy) still returns the store to the present; the next
    # send must not render from the past (it did when only the devtools flag moved).
    s = make_session(tmp_path, delay=0.5)
    dev = s.devtools
    inst = s.start("summarize", variables={"text": "one two three four five six"})
    inst.set_variable("text", "old")
    past = dev.last_index
    inst.set_variable("text", "new")
    busy = inst.send()
    dev.jump(past)
    with pytest.raises(ps.InstanceBusyError):
        inst.send()
    assert not dev.viewing_past
    assert inst.variables["text"].value == "new"
    inst.cancel()
    await busy
    result = await inst.send(settings={"echo_delay": 0})
    assert logged(s, result.run_id)[0][-1] == ("user", render("new"))
    s.close()


async def test_widget_send_while_viewing_the_past(tmp_path: Path, recording_comm: None) -> None:
    s = make_session(tmp_path)
    dev = s.devtools
    inst = s.start("summarize", variables={"text": "draft"})
    inst.set_variable("user_name", "Zed")
    past = dev.last_index
    inst.set_variable("user_name", "Bob")
    fe = FakeFrontEnd(PromptRunner(inst))
    dev.jump(past)
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {"text": "typed"}})
    await wait_for(lambda: len(fe.replies()) == 1)
    (done,) = fe.replies()
    msgs, _, _ = logged(s, done["run_id"])
    assert msgs[-1] == ("user", render("typed", "Bob"))
    fe.widget.close()
    s.close()


async def test_jump_to_before_a_queued_send_does_not_break_its_run(tmp_path: Path) -> None:
    # The run reads its own entity while it starts; a jump to a state in which it did
    # not exist yet made that read fail (KeyError) and the run end in "error".
    s = make_session(tmp_path)
    dev = s.devtools
    inst = s.start("summarize", variables={"text": "A"})
    before = dev.last_index
    pending = inst.send()  # recorded, not started
    dev.jump(before)
    result = await pending
    assert (result.status, result.error) == ("success", None)
    assert logged(s, result.run_id)[2] == "success"
    s.close()


async def test_cancel_while_viewing_the_past_stops_the_run(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    dev = s.devtools
    inst = s.start("summarize", variables={"text": " ".join(["w"] * 40)})
    before = dev.last_index
    task = asyncio.ensure_future(inst.send(settings={"echo_delay": 0.25}))
    await wait_for(lambda: inst.status == "running")
    dev.jump(before)
    try:
        assert inst.cancel()
    finally:
        dev.resume()
        inst.cancel()
        await task
    s.close()


async def test_edit_while_viewing_a_state_before_the_instance_existed(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    dev = s.devtools
    s.start("summarize")  # a state to go back to, before `inst` existed
    start = dev.last_index
    inst = s.start("summarize", variables={"text": "A"})
    dev.jump(start)
    inst.set_variable("text", "B")
    assert not dev.viewing_past and inst.variables["text"].value == "B"
    s.close()


async def test_widget_send_while_viewing_the_past_keeps_a_typed_value_equal_to_the_past(
    tmp_path: Path, recording_comm: None
) -> None:
    # The input shows the past value "old"; the user types "old" again and clicks: the
    # click's edit is compared with the present ("new"), so it is applied and sent.
    s = make_session(tmp_path)
    dev = s.devtools
    inst = s.start("summarize", variables={"text": "draft"})
    inst.set_variable("text", "old")
    past = dev.last_index
    inst.set_variable("text", "new")
    fe = FakeFrontEnd(PromptRunner(inst))
    dev.jump(past)
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {"text": "old"}})
    await wait_for(lambda: len(fe.replies()) == 1)
    assert logged(s, fe.replies()[0]["run_id"])[0][-1] == ("user", render("old"))
    fe.widget.close()
    s.close()


async def test_widget_refused_send_keeps_the_edits_it_carried(
    tmp_path: Path, recording_comm: None
) -> None:
    # The front end hands its unsynced edits to the click and never sends them again;
    # a refused send (here: a variable is missing) must still apply them.
    s = make_session(tmp_path)
    s.prompts.register(ps.Prompt(id="greet", messages=[ps.user("Hi {{name}} {{place}}")]))
    inst = s.start("greet")
    fe = FakeFrontEnd(PromptRunner(inst))
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {"name": "typed"}})
    await wait_for(lambda: len(fe.replies()) == 1)
    assert fe.replies()[0]["ok"] is False
    assert "MissingVariablesError" in (fe.replies()[0]["error"] or "")
    assert inst.variables["name"] == ("typed", "instance")
    assert s.runs.sql("SELECT count(*) FROM runs").fetchall()[0][0] == 0
    fe.widget.close()
    s.close()


# -- (c) a follow-up after an edit ------------------------------------------------------------


async def test_follow_up_continues_the_conversation_as_sent(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "A"})
    first = await inst.send()
    inst.set_variable("text", "B")
    follow = await inst.send("follow up")
    expected = [
        ("system", SYSTEM),
        ("user", render("A")),
        ("assistant", render("A")),
        ("user", "follow up"),
    ]
    assert logged(s, follow.run_id)[0] == expected
    assert first.response == render("A")
    assert pairs(inst.history) == [*expected, ("assistant", "follow up")]
    fresh = await inst.send()
    assert logged(s, fresh.run_id)[0] == [("system", SYSTEM), ("user", render("B"))]
    assert pairs(inst.history) == [
        ("system", SYSTEM),
        ("user", render("B")),
        ("assistant", render("B")),
    ]
    s.close()


# -- (d) the chat view ----------------------------------------------------------------------


async def test_chat_shows_the_conversation_as_sent_and_the_preview_apart(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "A"})
    assert all(m.status == "preview" for m in inst.messages)  # before the first send
    run = await inst.send()
    inst.set_variable("text", "B")
    assert list(inst.messages) == [
        ChatMessage("system", SYSTEM, run.run_id),
        ChatMessage("user", render("A"), run.run_id),
        ChatMessage("assistant", render("A"), run.run_id),
    ]
    assert [(m.role, m.content, m.status) for m in inst.preview] == [
        ("system", SYSTEM, "preview"),
        ("user", render("B"), "preview"),
    ]
    s.close()


async def test_stopped_reply_stays_visible_and_the_next_follow_up_ignores_it(
    tmp_path: Path,
) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "A"})
    await inst.send()
    sent = inst.history
    words = " ".join(f"w{i}" for i in range(40))
    task = asyncio.ensure_future(inst.send(words, settings={"echo_delay": 0.25}))
    await wait_for(lambda: inst.messages[-1].status == "streaming" and inst.messages[-1].content)
    assert inst.cancel()
    stopped = await task
    assert stopped.status == "cancelled"
    shown = inst.messages
    assert shown[: len(sent)] == sent
    assert [(m.role, m.status) for m in shown[len(sent) :]] == [
        ("user", "cancelled"),
        ("assistant", "cancelled"),
    ]
    partial = shown[-1].content
    assert partial and words.startswith(partial) and partial != words
    assert inst.history == sent  # the conversation as sent did not take the partial reply
    nxt = await inst.send("again")
    assert logged(s, nxt.run_id)[0] == [*pairs(sent), ("user", "again")]
    assert logged(s, stopped.run_id)[2] == "cancelled"
    s.close()


# -- re-running and restoring a follow-up ---------------------------------------------------


async def test_rerun_and_restore_of_a_follow_up_send_the_identical_request(
    tmp_path: Path,
) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "A"})
    await inst.send()
    inst.set_variable("text", "B")  # the follow-up continues A's conversation
    follow = await inst.send("and in French?")

    def raw(run_id: str) -> str:
        row = s.runs.sql("SELECT messages FROM runs WHERE run_id = ?", [run_id]).fetchall()[0]
        return str(row[0])

    again = await s.runs.rerun(follow.run_id)
    assert again.run_id != follow.run_id
    assert raw(again.run_id) == raw(follow.run_id)

    restored = s.devtools.restore_run(follow.run_id)
    assert pairs(restored.history) == logged(s, follow.run_id)[0][:-1]
    assert restored.variables["text"].value == "B"  # the values live at that send
    redo = await restored.send("and in French?")
    assert raw(redo.run_id) == raw(follow.run_id)

    # a follow-up sent as the very first message (no conversation before it)
    solo = s.start("summarize", variables={"text": "C"})
    first = await solo.send("hello")
    assert raw((await s.runs.rerun(first.run_id)).run_id) == raw(first.run_id)
    s.close()


# -- an imported export with a run in flight -----------------------------------------------


async def test_import_with_a_run_in_flight_wedges_no_instance(tmp_path: Path) -> None:
    s = make_session(tmp_path, delay=0.5)
    inst = s.start("summarize", variables={"text": "one two three four five six seven"})
    task = asyncio.ensure_future(inst.send())
    await wait_for(lambda: inst.status == "running")
    exported = s.devtools.export()

    other = ps.Session(db=str(tmp_path / "other.duckdb"))
    other.import_state(exported)
    moved = other.instance(inst.id)
    assert moved.status == "error" and moved.last_run is not None
    result = await moved.send(settings={"echo_delay": 0})
    assert result.status == "success"

    # into the same session: its own run keeps going and ends normally
    s.import_state(exported)
    inst.cancel()
    assert (await task).status == "cancelled"
    assert inst.status == "cancelled"
    assert (await inst.send(settings={"echo_delay": 0})).status == "success"
    other.close()
    s.close()


# -- bad input changes nothing ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"content": 5}, VariableError),
        ({"content": b"bytes"}, VariableError),
        ({"settings": {"x": object()}}, ProviderConfigError),
        ({"settings": {"temperature": float("nan")}}, ProviderConfigError),
        ({"content": "lone \ud800 surrogate"}, VariableError),
        ({"variables": {"text": "lone \udfff"}}, VariableError),
        ({"variables": {"not an identifier": "x"}}, VariableError),
        ({"variables": {"text": object()}}, VariableError),
        ({"model": "no-such-provider:x"}, ps.UnknownProviderError),
    ],
)
async def test_bad_send_raises_a_typed_error_and_changes_nothing(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception]
) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "A"})
    await inst.send()
    before = s.store.get_state()
    index = s.devtools.last_index
    content = kwargs.pop("content", None)
    with pytest.raises(error):
        inst.send(content, **kwargs)
    if "settings" not in kwargs:  # the widget path validates the same way
        with pytest.raises(error):
            inst.send_soon(content, **kwargs)
    assert s.store.get_state() is before
    assert s.devtools.last_index == index
    assert s.runs.sql("SELECT count(*) FROM runs").fetchall()[0][0] == 1
    assert inst.status == "success"
    s.close()


async def test_a_send_nobody_awaits_still_ends_in_the_log(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "dropped"})
    coro = inst.send()
    coro.close()  # the caller drops it without awaiting
    await wait_for(lambda: inst.status == "success")
    s.runs.flush()
    assert s.runs.sql("SELECT status FROM runs").fetchall() == [("success",)]
    s.close()
