"""Widgets driven the way the front end drives them: comm messages in, comm messages out.

A recording comm stands in for the kernel's: ``FakeFrontEnd.custom(...)`` delivers a
custom message through ipywidgets' real ``_handle_msg`` path, and every message the
widget publishes (trait updates, custom replies) is kept for assertions.
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
from comm import DummyComm

import promptstate as ps
from promptstate import widgets
from promptstate.widgets import ChatView, Composer, PromptRunner, VariablesForm
from promptstate.widgets._binding import MIN_SYNC_INTERVAL, Coalescer
from promptstate.widgets._messages import parse_client_message

pytestmark = pytest.mark.anyio


class RecordingComm(DummyComm):
    """A comm that keeps what the kernel side publishes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.publish_threads: set[int] = set()
        super().__init__(*args, **kwargs)

    def publish_msg(self, msg_type: str, data: Any = None, *args: Any, **kwargs: Any) -> None:
        self.published.append((msg_type, json.loads(json.dumps(data or {}))))
        self.publish_threads.add(threading.get_ident())


class FakeFrontEnd:
    """The browser side of one widget."""

    def __init__(self, widget: Any) -> None:
        self.widget = widget
        self.comm: RecordingComm = widget.comm

    def _deliver(self, data: dict[str, Any]) -> None:
        self.comm.handle_msg(
            {"content": {"comm_id": self.comm.comm_id, "data": data}, "buffers": []}
        )

    def custom(self, content: dict[str, Any]) -> None:
        self._deliver({"method": "custom", "content": content})

    def update(self, state: dict[str, Any]) -> None:
        self._deliver({"method": "update", "state": state, "buffer_paths": []})

    def updates(self, key: str | None = None) -> list[dict[str, Any]]:
        """Trait update states the kernel sent (only those touching ``key``)."""
        out = [
            d["state"]
            for t, d in self.comm.published
            if t == "comm_msg" and d.get("method") == "update"
        ]
        return [s for s in out if key is None or key in s]

    def replies(self) -> list[dict[str, Any]]:
        return [
            d["content"]
            for t, d in self.comm.published
            if t == "comm_msg" and d.get("method") == "custom"
        ]

    def clear(self) -> None:
        self.comm.published.clear()


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    yield


SUMMARIZE = ps.Prompt(
    id="summarize",
    messages=[ps.system("You are terse."), ps.user("Summarize for {{user_name}}: {{text}}")],
    variables={"text": "", "user_name": "Ann"},
    model="echo",
)


def make_session(tmp_path: Path, delay: float = 0.0, **kwargs: Any) -> ps.Session:
    # Made inside the test's event loop, like a session made in a notebook cell.
    s = ps.Session(db=str(tmp_path / "runs.duckdb"), **kwargs)
    settings = {"echo_delay": delay} if delay else {}
    s.prompts.register(
        ps.Prompt(
            id=SUMMARIZE.id,
            messages=list(SUMMARIZE.messages),
            variables=dict(SUMMARIZE.variables),
            model="echo",
            settings=settings,
        )
    )
    return s


async def settle(fe: FakeFrontEnd, sends: int = 1, timeout: float = 10.0) -> None:
    """Wait for ``sends`` send_done replies, then for the last trait sync."""
    await wait_for(lambda: len(fe.replies()) >= sends, timeout)
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


# -- construction ---------------------------------------------------------------------------


def test_public_names() -> None:
    assert widgets.__all__ == sorted(widgets.__all__)
    assert {"ChatView", "Composer", "PromptRunner", "VariablesForm"} <= set(widgets.__all__)
    assert ps.widgets is widgets


async def test_initial_state_mirrors_selectors(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    w = PromptRunner(inst)
    assert w.sections == ["variables", "chat", "composer"]
    assert w.instance_id == inst.id
    assert (w.prompt_id, w.model_label, w.status) == ("summarize", "echo", "idle")
    assert w.variables == [
        {"name": "text", "value": "draft", "source": "instance"},
        {"name": "user_name", "value": "Ann", "source": "default"},
    ]
    assert [(m["role"], m["content"]) for m in w.messages] == [
        ("system", "You are terse."),
        ("user", "Summarize for Ann: draft"),
    ]
    assert w.last_run == {} and w.error == "" and w.outdated is False
    # the front end receives all of it with the comm_open
    opened = w.comm.published[0]
    assert opened[0] == "comm_open"
    assert opened[1]["state"]["variables"] == w.variables
    assert "export default" in opened[1]["state"]["_esm"]
    assert "promptstate-widget" in opened[1]["state"]["_css"]


async def test_parts_have_their_sections(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize")
    assert VariablesForm(inst).sections == ["variables"]
    assert ChatView(inst).sections == ["chat"]
    assert Composer(inst).sections == ["composer"]


def test_rejects_anything_but_an_instance() -> None:
    with pytest.raises(TypeError, match="instance handle"):
        PromptRunner("summarize")  # type: ignore[arg-type]


async def test_instance_displays_as_a_prompt_runner(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize")
    data, _metadata = inst._repr_mimebundle_()
    view = data["application/vnd.jupyter.widget-view+json"]
    from ipywidgets.widgets.widget import _instances

    runner = _instances[view["model_id"]]
    assert isinstance(runner, PromptRunner) and runner.instance == inst


# -- front end -> store ---------------------------------------------------------------------


async def test_typing_sets_the_variable_and_every_view_follows(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    other = s.start("summarize", variables={"text": "unrelated"})
    a, b = FakeFrontEnd(PromptRunner(inst)), FakeFrontEnd(ChatView(inst))
    c = FakeFrontEnd(VariablesForm(other))
    for fe in (a, b, c):
        fe.clear()

    a.custom({"type": "set_variable", "name": "user_name", "value": "Bob"})
    assert inst.variables["user_name"] == ("Bob", "instance")  # applied synchronously
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)

    (state,) = a.updates("variables")
    assert state["variables"][1] == {"name": "user_name", "value": "Bob", "source": "instance"}
    assert state["messages"][1]["content"] == "Summarize for Bob: draft"  # one message
    (chat_state,) = b.updates()
    assert chat_state["messages"][1]["content"] == "Summarize for Bob: draft"
    assert c.updates() == []  # the other instance is untouched
    assert other.variables["user_name"] == ("Ann", "default")


async def test_change_from_code_reaches_the_view(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize")
    fe = FakeFrontEnd(VariablesForm(inst))
    fe.clear()
    inst.set_variable("text", "from code")
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)
    assert fe.updates("variables")[-1]["variables"][0]["value"] == "from code"
    assert fe.widget.variables[0] == {"name": "text", "value": "from code", "source": "instance"}


async def test_unset_variable_falls_back(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize", variables={"user_name": "Bob"})
    fe = FakeFrontEnd(VariablesForm(inst))
    fe.custom({"type": "unset_variable", "name": "user_name"})
    assert inst.variables["user_name"] == ("Ann", "default")


async def test_no_update_when_nothing_changed(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize")
    other = s.start("summarize")
    fe = FakeFrontEnd(PromptRunner(inst))
    fe.clear()
    other.set_variable("text", "x")  # same store, different instance
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)
    assert fe.updates() == []


async def test_front_end_cannot_overwrite_store_values(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(PromptRunner(inst))
    before = fe.widget.variables
    fe.update({"variables": [{"name": "text", "value": "hacked", "source": "instance"}]})
    fe.update({"status": "success", "messages": []})
    assert fe.widget.variables == before
    assert fe.widget.status == "idle"
    assert inst.variables["text"].value == "draft"


# -- send --------------------------------------------------------------------------------------


async def test_send_applies_the_carried_values_first(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(PromptRunner(inst))
    # The debounced set_variable never arrived; the click carries the value.
    fe.custom({"type": "send", "seq": 7, "content": None, "variables": {"text": "final"}})
    assert inst.variables["text"].value == "final"  # applied before the handler returns
    await settle(fe)

    (done,) = fe.replies()
    assert done["type"] == "send_done" and done["seq"] == 7 and done["ok"] is True
    assert done["status"] == "success"
    row = s.runs.sql(
        "SELECT run_id, response, variables FROM runs WHERE run_id = ?", [done["run_id"]]
    ).fetchall()[0]
    assert row[1] == "Summarize for Ann: final"
    assert json.loads(row[2])["text"] == {"value": "final", "source": "instance"}
    w = fe.widget
    assert w.status == "success" and w.error == ""
    assert w.messages[-1] == {
        "role": "assistant",
        "content": "Summarize for Ann: final",
        "run_id": done["run_id"],
    }
    assert w.last_run["run_id"] == done["run_id"]
    assert w.last_run["output_tokens"] == 4 and w.last_run["latency_ms"] is not None


async def test_send_does_not_pin_inherited_values(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(PromptRunner(inst))
    fe.custom(
        {
            "type": "send",
            "seq": 1,
            "content": None,
            "variables": {"user_name": "Ann", "text": "draft"},
        }
    )
    await settle(fe)
    assert inst.variables["user_name"] == ("Ann", "default")


async def test_send_with_a_message_continues_the_conversation(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(Composer(inst))
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await settle(fe)
    fe.custom({"type": "send", "seq": 2, "content": "shorter please", "variables": {}})
    await settle(fe, 2)
    roles = [(m["role"], m["content"]) for m in fe.widget.messages]
    assert roles[-2:] == [("user", "shorter please"), ("assistant", "shorter please")]


async def test_click_handler_returns_while_the_reply_streams(tmp_path: Path) -> None:
    inst = make_session(tmp_path, delay=0.05).start("summarize", variables={"text": "a b c d"})
    fe = FakeFrontEnd(PromptRunner(inst))
    t0 = time.perf_counter()
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    assert time.perf_counter() - t0 < 0.05  # scheduled, not awaited
    await wait_for(lambda: fe.widget.status == "running")
    await settle(fe)
    assert fe.widget.messages[-1]["content"] == "Summarize for Ann: a b c d"


async def test_editing_while_streaming_does_not_alter_the_run(tmp_path: Path) -> None:
    s = make_session(tmp_path, delay=0.03)
    inst = s.start("summarize", variables={"text": "one two three four five"})
    fe = FakeFrontEnd(PromptRunner(inst))
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await wait_for(
        lambda: any(m["role"] == "assistant" and m["content"] for m in fe.widget.messages)
    )
    fe.custom({"type": "set_variable", "name": "text", "value": "changed mid-run"})
    # the view keeps showing the request as sent while it streams
    assert fe.widget.messages[1]["content"] == "Summarize for Ann: one two three four five"
    await settle(fe)
    (done,) = fe.replies()
    row = s.runs.sql("SELECT response FROM runs WHERE run_id = ?", [done["run_id"]]).fetchall()[0]
    assert row[0] == "Summarize for Ann: one two three four five"
    assert inst.variables["text"].value == "changed mid-run"
    # the reply now answers an older prompt, and the view says so
    assert fe.widget.outdated is True
    fe.custom({"type": "set_variable", "name": "text", "value": "one two three four five"})
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)
    assert fe.widget.outdated is False


async def test_streaming_updates_are_coalesced_and_final_text_exact(tmp_path: Path) -> None:
    words = " ".join(f"w{i}" for i in range(150))
    inst = make_session(tmp_path, delay=0.002).start("summarize", variables={"text": words})
    fe = FakeFrontEnd(ChatView(inst))
    fe.clear()
    t0 = time.perf_counter()
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await settle(fe)
    elapsed = time.perf_counter() - t0
    updates = fe.updates("messages")
    assert updates[-1]["messages"][-1]["content"] == f"Summarize for Ann: {words}"
    # at most one sync per interval (+ the first one and the last one)
    assert len(updates) <= elapsed / MIN_SYNC_INTERVAL + 2, (len(updates), elapsed)


async def test_many_dispatches_become_few_syncs(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize")
    fe = FakeFrontEnd(VariablesForm(inst))
    fe.clear()
    for i in range(300):  # e.g. a loop in a cell, or a slider
        inst.set_variable("text", str(i))
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)
    updates = fe.updates("variables")
    assert 1 <= len(updates) <= 2
    assert updates[-1]["variables"][0]["value"] == "299"


async def test_messages_from_another_thread(tmp_path: Path) -> None:
    """JupyterLab >= 4.4 may deliver comm messages on a kernel subshell thread."""
    inst = make_session(tmp_path, delay=0.01).start("summarize", variables={"text": "x y"})
    w = PromptRunner(inst)
    fe = FakeFrontEnd(w)
    main = threading.get_ident()
    trait_threads: set[int] = set()
    w.observe(
        lambda _: trait_threads.add(threading.get_ident()), names=["messages", "status", "error"]
    )
    fe.comm.publish_threads.clear()

    def subshell() -> None:
        fe.custom({"type": "set_variable", "name": "text", "value": "from a subshell"})
        fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})

    t = threading.Thread(target=subshell)
    t.start()
    t.join()
    await settle(fe)
    assert w.messages[-1]["content"] == "Summarize for Ann: from a subshell"
    assert fe.replies()[0]["ok"] is True
    # traits are only ever touched, and messages only published, on the main loop
    assert trait_threads == {main}
    assert fe.comm.publish_threads == {main}


async def test_stop_cancels_the_run(tmp_path: Path) -> None:
    inst = make_session(tmp_path, delay=0.2).start("summarize", variables={"text": "a b c d e f"})
    runner, other_view = FakeFrontEnd(PromptRunner(inst)), FakeFrontEnd(ChatView(inst))
    runner.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await wait_for(lambda: runner.widget.status == "running")
    runner.custom({"type": "stop"})
    await settle(runner)
    assert runner.widget.status == other_view.widget.status == "cancelled"
    assert runner.widget.last_run["status"] == "cancelled"
    assert runner.replies()[0]["status"] == "cancelled"


# -- errors are shown, never lost -----------------------------------------------------------


async def test_missing_variable_error_is_shown(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    s.prompts.register(ps.Prompt(id="greet", messages=[ps.user("Hello {{name}}")], model="echo"))
    inst = s.start("greet")
    fe = FakeFrontEnd(PromptRunner(inst))
    assert fe.widget.variables == [{"name": "name", "value": None, "source": "missing"}]
    fe.custom({"type": "send", "seq": 3, "content": None, "variables": {}})
    await wait_for(lambda: fe.widget.error != "")
    assert fe.widget.error.startswith("MissingVariablesError")
    (done,) = fe.replies()
    assert done["ok"] is False and done["seq"] == 3 and "name" in done["error"]
    # the next successful send clears it
    fe.custom({"type": "send", "seq": 4, "content": None, "variables": {"name": "Ada"}})
    await settle(fe, 2)
    assert fe.widget.error == ""
    assert fe.widget.messages[-1]["content"] == "Hello Ada"


async def test_busy_error_is_shown(tmp_path: Path) -> None:
    inst = make_session(tmp_path, delay=0.1).start("summarize", variables={"text": "a b c"})
    fe = FakeFrontEnd(PromptRunner(inst))
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await wait_for(lambda: inst.status == "running")
    fe.custom({"type": "send", "seq": 2, "content": None, "variables": {}})
    await wait_for(lambda: "InstanceBusyError" in fe.widget.error)
    await settle(fe, 2)
    assert {r["seq"]: r["ok"] for r in fe.replies()} == {1: True, 2: False}


async def test_provider_error_is_shown(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    s.prompts.register(
        ps.Prompt(
            id="boom", messages=[ps.user("hi")], model="echo", settings={"echo_error": "overloaded"}
        )
    )
    fe = FakeFrontEnd(PromptRunner(s.start("boom")))
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await settle(fe)
    assert fe.widget.status == "error"
    assert "overloaded" in fe.widget.last_run["error"]
    assert fe.replies()[0]["status"] == "error"


async def test_malformed_message_is_shown(tmp_path: Path) -> None:
    fe = FakeFrontEnd(PromptRunner(make_session(tmp_path).start("summarize")))
    fe.custom({"type": "set_variable", "name": "text"})
    await wait_for(lambda: fe.widget.error != "")
    assert "ValueError" in fe.widget.error
    fe.custom({"type": "explode"})
    await wait_for(lambda: "explode" in fe.widget.error)


@pytest.mark.parametrize(
    "content",
    [
        None,
        [],
        {"type": "send", "content": 3},
        {"type": "send", "variables": {"a": 1}},
        {"type": "set_variable", "name": 1, "value": "x"},
    ],
)
def test_parse_rejects_bad_messages(content: Any) -> None:
    with pytest.raises(ValueError):
        parse_client_message(content)


def test_parse_accepts_the_front_end_messages() -> None:
    assert parse_client_message({"type": "stop"}) == {"type": "stop"}
    msg = parse_client_message({"type": "send", "seq": 2, "content": None, "variables": {"a": "b"}})
    assert msg == {"type": "send", "seq": 2, "content": None, "variables": {"a": "b"}}


# -- lifecycle ---------------------------------------------------------------------------------


async def test_close_unsubscribes(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize")
    listeners = s.store.listener_count
    w = PromptRunner(inst)
    assert s.store.listener_count == listeners + 1
    fe = FakeFrontEnd(w)
    w.close()
    assert s.store.listener_count == listeners
    fe.clear()
    inst.set_variable("text", "after close")
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)
    assert fe.comm.published == []
    assert not [r for r in caplog.records if "listener" in r.getMessage()]


async def test_closed_instance_shows_closed(tmp_path: Path) -> None:
    inst = make_session(tmp_path).start("summarize")
    w = PromptRunner(inst)
    inst.close()
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)
    assert w.status == "closed"


def test_without_an_event_loop(tmp_path: Path) -> None:
    """Outside any loop (a plain script) views update inline; a send says why it cannot run."""
    s = ps.Session(db=None)
    s.prompts.register(SUMMARIZE)
    inst = s.start("summarize")
    fe = FakeFrontEnd(PromptRunner(inst))
    inst.set_variable("text", "inline")
    assert fe.widget.variables[0]["value"] == "inline"
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    assert "no asyncio loop" in fe.widget.error
    assert fe.replies()[0]["ok"] is False


async def test_session_made_outside_the_loop(tmp_path: Path) -> None:
    """A session made at import time still sends on the loop the widget lives on."""
    s = await asyncio.to_thread(make_session, tmp_path)
    assert s.loop is None
    inst = s.start("summarize", variables={"text": "late loop"})
    fe = FakeFrontEnd(PromptRunner(inst))
    threading.Thread(
        target=fe.custom, args=({"type": "send", "seq": 1, "content": None, "variables": {}},)
    ).start()
    await wait_for(lambda: fe.replies() != [])
    assert fe.replies()[0]["ok"] is True, fe.replies()


# -- the coalescer on its own -------------------------------------------------------------


async def test_coalescer_from_many_threads() -> None:
    loop = asyncio.get_running_loop()
    seen: list[int] = []
    value = [0]
    c = Coalescer(loop, lambda: seen.append(value[0]), interval=0.02)

    def hammer() -> None:
        for _ in range(500):
            value[0] += 1
            c.request()

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    await asyncio.sleep(0.1)
    assert seen[-1] == value[0]  # the last state always lands
    assert len(seen) < 50
    c.stop()
    c.request()
    await asyncio.sleep(0.05)
    assert c.calls == len(seen)


# -- settings row, preview, viewing the past ---------------------------------------------------


async def test_send_carries_the_settings_row(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(PromptRunner(inst))
    fe.custom(
        {
            "type": "send",
            "seq": 1,
            "content": None,
            "variables": {},
            "settings": {"temperature": 0.3, "max_tokens": 64},
        }
    )
    await settle(fe)
    (done,) = fe.replies()
    assert done["ok"] is True
    run = s.runs.get(done["run_id"])
    assert run.settings["temperature"] == 0.3 and run.settings["max_tokens"] == 64


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"temperature": 5}, "temperature must be a number from 0 to 2"),
        ({"max_tokens": 2.5}, "max_tokens must be a whole number"),
        ({"temperature": "hot"}, "temperature must be a number"),
        ({"top_k": 3}, "unknown setting 'top_k'"),
    ],
)
async def test_bad_settings_are_shown_and_send_nothing(
    tmp_path: Path, settings: dict[str, Any], message: str
) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(PromptRunner(inst))
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}, "settings": settings})
    await wait_for(lambda: fe.widget.error != "")
    assert message in fe.widget.error
    assert inst.last_run is None and inst.status == "idle"


async def test_settings_row_picks_the_model(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    fe = FakeFrontEnd(PromptRunner(inst))
    w = fe.widget
    assert w.model == "echo"
    # the prompt's model and every configured provider are offered
    assert w.model_choices[0] == "echo"
    assert set(s.providers.names()) <= {c.partition(":")[0] for c in w.model_choices}
    fe.custom({"type": "set_model", "model": "echo:other"})
    assert inst.model == "echo:other"
    await wait_for(lambda: w.model == "echo:other")
    assert w.model_label != "echo" and "echo:other" in w.model_choices
    fe.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await settle(fe)
    assert s.runs.get(fe.replies()[0]["run_id"]).model == "other"
    # an unknown provider is refused and shown; the model stays
    fe.custom({"type": "set_model", "model": "nosuch:model"})
    await wait_for(lambda: w.error != "")
    assert w.error.startswith("UnknownProviderError") and inst.model == "echo:other"
    # null returns to the prompt's model
    fe.custom({"type": "set_model", "model": None})
    await wait_for(lambda: w.model == "echo")
    assert inst.model == "echo"
