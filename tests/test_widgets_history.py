"""DevTools, RunHistory and SweepGrid driven by front-end messages (a recording comm).

Same harness as ``test_widgets.py``: ``FakeFrontEnd.custom(...)`` delivers a custom
message through ipywidgets' real comm path; trait updates and custom replies the kernel
publishes are recorded. Work the panels do off the loop (queries) lands a moment later,
so assertions wait for it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import comm
import pytest

import promptstate as ps
from promptstate import widgets
from promptstate.widgets import DevTools, PromptRunner, RunHistory, SweepGrid, VariablesForm
from promptstate.widgets._binding import MIN_SYNC_INTERVAL
from promptstate.widgets._devtools_widget import state_diff
from promptstate.widgets._history_widget import DEFAULT_QUERY
from promptstate.widgets._panel import json_safe

from .test_widgets import FakeFrontEnd, RecordingComm, make_session, settle, wait_for

pytestmark = pytest.mark.anyio


@pytest.fixture(autouse=True)
def recording_comm(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(comm, "create_comm", RecordingComm)
    yield


async def synced() -> None:
    """Long enough for a coalesced refresh to land."""
    await asyncio.sleep(MIN_SYNC_INTERVAL * 3)


def variable_sets(dt: Any, value: str) -> list[int]:
    return [
        a.index
        for a in dt.actions
        if a.type == "instances/variable_set" and a.payload.get("value") == value
    ]


def test_public_names() -> None:
    assert widgets.__all__ == sorted(widgets.__all__)
    assert {"DevTools", "RunHistory", "SweepGrid"} <= set(widgets.__all__)
    for name in ("DevTools", "RunHistory", "SweepGrid"):
        assert getattr(widgets, name).__doc__


def test_panels_reject_the_wrong_argument() -> None:
    with pytest.raises(TypeError, match=r"ps\.Session"):
        DevTools("session")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ps\.Session"):
        RunHistory(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"session\.sweep"):
        SweepGrid([])  # type: ignore[arg-type]


# -- DevTools --------------------------------------------------------------------------------


async def test_devtools_lists_actions_live_and_coalesced(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "one"})
    fe = FakeFrontEnd(DevTools(s))
    w = fe.widget
    assert [a["type"] for a in w.actions][:3] == [
        "prompts/fetch_pending",
        "prompts/fetch_fulfilled",
        "instances/started",
    ]
    assert w.position is None and w.last_index == s.devtools.last_index
    # the comm_open carries the list and the front-end code
    opened = fe.comm.published[0][1]["state"]
    assert opened["actions"] == w.actions
    assert "export default" in opened["_esm"] and "promptstate-panel" in opened["_css"]

    fe.clear()
    for i in range(300):
        inst.set_variable("text", f"v{i}")
    await synced()
    updates = fe.updates("actions")
    assert 1 <= len(updates) <= 2, len(updates)
    last = w.actions[-1]
    assert last["type"] == "instances/variable_set" and '"v299"' in last["summary"]
    assert last["instance_id"] == inst.id
    assert w.total == s.devtools.last_index - s.devtools.first_index + 1


async def test_devtools_ships_only_the_visible_window(tmp_path: Path) -> None:
    s = make_session(tmp_path, history=2000)
    inst = s.start("summarize")
    for i in range(600):
        inst.set_variable("text", f"v{i}")
    fe = FakeFrontEnd(DevTools(s, window=50))
    w = fe.widget
    assert len(w.actions) == 50 and w.total == len(s.devtools.actions) == 603
    assert w.actions[-1]["index"] == s.devtools.last_index
    assert len(json.dumps(fe.comm.published[0][1]["state"]["actions"])) < 20_000

    fe.custom({"type": "page", "offset": 50})
    assert [a["index"] for a in w.actions] == list(range(503, 553))
    assert w.offset == 50
    fe.custom({"type": "page", "offset": 10_000})  # clamped to the oldest page
    assert [a["index"] for a in w.actions] == list(range(50)) and w.offset == 553
    fe.custom({"type": "page", "offset": 0})
    assert w.actions[-1]["index"] == 602


async def test_devtools_filters_by_type_and_instance(tmp_path: Path) -> None:
    s = make_session(tmp_path, delay=0.001)
    a = s.start("summarize", variables={"text": "alpha beta"})
    b = s.start("summarize", variables={"text": "other"})
    b.set_variable("user_name", "Bob")
    # open first: with a view subscribed, a streamed reply records chunk actions
    fe = FakeFrontEnd(DevTools(s))
    w = fe.widget
    await a.send()
    w._refresh()
    assert set(w.instance_ids) == {a.id, b.id}

    fe.custom({"type": "filter", "action_type": "variable_set", "instance_id": ""})
    assert w.filter_type == "variable_set"
    assert [x["instance_id"] for x in w.actions] == [b.id]

    # run lifecycle actions name only their request: they still belong to instance a
    fe.custom({"type": "filter", "action_type": "runs/", "instance_id": a.id[:6]})
    types = {x["type"] for x in w.actions}
    # one action per streamed chunk: hidden by default, counted, shown on request
    assert {"runs/execute_pending", "runs/execute_fulfilled"} <= types
    assert "runs/chunk_received" not in types and w.hidden_chunks > 0
    fe.custom({"type": "show_chunks", "show": True})
    types = {x["type"] for x in w.actions}
    assert {"runs/execute_pending", "runs/chunk_received", "runs/execute_fulfilled"} <= types
    assert w.hidden_chunks == 0
    fe.custom({"type": "show_chunks", "show": False})
    assert {x["instance_id"] for x in w.actions} == {a.id}
    assert w.total == len(w.actions) < len(s.devtools.actions)

    fe.custom({"type": "filter", "action_type": "no-such-type", "instance_id": ""})
    assert w.actions == [] and w.total == 0
    fe.custom({"type": "filter", "action_type": "", "instance_id": ""})
    assert w.total + w.hidden_chunks == len(s.devtools.actions)


async def test_select_shows_payload_and_state_diff(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    inst.set_variable("text", "final")
    fe = FakeFrontEnd(DevTools(s))
    (index,) = variable_sets(s.devtools, "final")
    fe.custom({"type": "select", "index": index})
    w = fe.widget
    assert w.selected == index
    d = w.detail
    assert d["type"] == "instances/variable_set" and d["instance_id"] == inst.id
    assert json.loads(d["payload"]) == {"instance_id": inst.id, "name": "text", "value": "final"}
    assert d["diff"] == [
        {
            "path": f"instances.{inst.id}.values.text",
            "op": "change",
            "old": '"draft"',
            "new": '"final"',
        }
    ]
    # the first action diffs against the base state
    fe.custom({"type": "select", "index": s.devtools.first_index + 2})  # instances/started
    assert any(e["path"] == f"instances.{inst.id}" and e["op"] == "add" for e in w.detail["diff"])
    fe.custom({"type": "select", "index": None})
    assert w.detail == {} and w.selected is None


async def test_state_diff_of_a_finished_run(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "x"})
    run = await inst.send()
    dt = s.devtools
    last = dt.last_index
    diff = {e["path"]: e for e in state_diff(dt.state_at(last - 1), dt.state_at(last))}
    assert diff[f"runs.{run.run_id}.status"]["new"] == '"success"'
    assert diff[f"instances.{inst.id}.history[0]"]["op"] == "add"
    assert state_diff(dt.state_at(last), dt.state_at(last)) == []


async def test_jump_makes_other_widgets_show_the_old_value(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "first"})
    inst.set_variable("text", "second")
    inst.set_variable("text", "third")
    form = FakeFrontEnd(VariablesForm(inst))
    runner = FakeFrontEnd(PromptRunner(inst))
    dev = FakeFrontEnd(DevTools(s))
    (index,) = variable_sets(s.devtools, "second")

    dev.custom({"type": "jump", "index": index})
    await synced()
    assert inst.variables["text"].value == "second"
    assert form.widget.variables[0] == {"name": "text", "value": "second", "source": "instance"}
    assert runner.widget.messages[1]["content"] == "Summarize for Ann: second"
    assert dev.widget.position == index

    dev.custom({"type": "resume"})
    await synced()
    assert dev.widget.position is None
    assert form.widget.variables[0]["value"] == "third"

    # typing while jumped returns to the latest state first, then applies the edit
    dev.custom({"type": "jump", "index": index})
    form.custom({"type": "set_variable", "name": "user_name", "value": "Bob"})
    await synced()
    assert dev.widget.position is None
    assert inst.variables["text"].value == "third"
    assert form.widget.variables[1]["value"] == "Bob"


async def test_jump_from_a_subshell_thread_touches_traits_on_the_loop(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "a"})
    inst.set_variable("text", "b")
    form = FakeFrontEnd(VariablesForm(inst))
    dev = FakeFrontEnd(DevTools(s))
    main = threading.get_ident()
    threads: set[int] = set()
    for fe in (form, dev):
        fe.widget.observe(lambda _: threads.add(threading.get_ident()), names=["variables"])
        fe.widget.observe(lambda _: threads.add(threading.get_ident()), names=["position"])
    (index,) = variable_sets(s.devtools, "b")
    t = threading.Thread(target=dev.custom, args=({"type": "jump", "index": index - 1},))
    t.start()
    t.join()
    await wait_for(lambda: dev.widget.position == index - 1)
    await synced()
    assert form.widget.variables[0]["value"] == "a"
    assert threads == {main}
    assert dev.comm.publish_threads == {main}


async def test_skip_toggles_an_action_out(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "a"})
    inst.set_variable("user_name", "Bob")
    inst.set_variable("text", "b")
    form = FakeFrontEnd(VariablesForm(inst))
    dev = FakeFrontEnd(DevTools(s))
    index = next(
        a.index
        for a in s.devtools.actions
        if a.type == "instances/variable_set" and a.payload["name"] == "user_name"
    )
    dev.custom({"type": "select", "index": index})
    dev.custom({"type": "skip", "index": index})
    await synced()
    assert inst.variables["user_name"].value == "Ann"  # back to the default
    assert inst.variables["text"].value == "b"  # later actions replayed
    assert form.widget.variables[1] == {"name": "user_name", "value": "Ann", "source": "default"}
    row = next(a for a in dev.widget.actions if a["index"] == index)
    assert row["skipped"] is True
    assert dev.widget.detail["skipped"] is True and dev.widget.detail["diff"] == []
    assert "skipped" in dev.widget.notice
    dev.custom({"type": "skip", "index": index})
    await synced()
    assert inst.variables["user_name"].value == "Bob"
    assert next(a for a in dev.widget.actions if a["index"] == index)["skipped"] is False


async def test_export_then_import_restores_the_history(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "kept"})
    dev = FakeFrontEnd(DevTools(s))
    dev.custom({"type": "export"})
    (reply,) = dev.replies()
    assert reply["type"] == "export_data" and reply["filename"].endswith(".json")
    text = reply["text"]
    assert json.loads(text)["format"] == "promptstate-devtools"
    assert "exported" in dev.widget.notice

    inst.set_variable("text", "changed later")
    await synced()
    held = dev.widget.total
    dev.custom({"type": "import", "text": text})
    await synced()
    assert dev.widget.error == ""
    assert "imported" in dev.widget.notice
    assert inst.variables["text"].value == "kept"
    assert dev.widget.total == held - 1
    assert s.devtools.export() == text


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda t: t[: len(t) // 2],  # truncated
        lambda t: t.replace('"kept"', '"tampered"'),  # checksum mismatch
        lambda t: "[]",
        lambda t: "not json at all",
    ],
    ids=["truncated", "tampered", "array", "garbage"],
)
async def test_corrupt_import_shows_an_error_and_changes_nothing(
    tmp_path: Path, corrupt: Any
) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "kept"})
    inst.set_variable("text", "now")
    dev = FakeFrontEnd(DevTools(s))
    text = s.devtools.export()
    state, actions = s.store.get_state(), dev.widget.actions
    dev.custom({"type": "import", "text": corrupt(text)})
    await synced()
    assert dev.widget.error.startswith("StateImportError: ")
    assert s.store.get_state() is state
    assert dev.widget.actions == actions
    assert s.devtools.export() == text
    # the next good message clears the error
    dev.custom({"type": "resume"})
    await synced()
    assert dev.widget.error == ""


async def test_devtools_errors_are_shown_not_raised(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    s.start("summarize")
    dev = FakeFrontEnd(DevTools(s))
    dev.custom({"type": "jump", "index": 10_000})
    assert dev.widget.error.startswith("HistoryIndexError: action 10000 is not in the history")
    dev.custom({"type": "jump", "index": "3"})
    assert "integer 'index'" in dev.widget.error
    dev.custom({"type": "explode"})
    assert "unknown DevTools message type 'explode'" in dev.widget.error
    dev.custom({"type": "select", "index": 10_000})
    assert dev.widget.selected is None and "no longer in the history" in dev.widget.notice
    assert s.devtools.position is None


async def test_devtools_never_shows_an_api_key(tmp_path: Path) -> None:
    key = "sk-test-devtools-0123456789"
    s = make_session(
        tmp_path,
        providers=[
            ps.providers.OpenAICompatible(name="x", base_url="http://127.0.0.1:9", api_key=key)
        ],
    )
    inst = s.start("summarize")
    inst.set_variable("text", f"pasted {key} by mistake")
    dev = FakeFrontEnd(DevTools(s))
    dev.widget.select(s.devtools.last_index)
    dev.custom({"type": "export"})
    blob = json.dumps(dev.comm.published)
    assert key not in blob
    assert "[redacted]" in dev.widget.actions[-1]["summary"]
    assert "[redacted]" in dev.widget.detail["payload"]


async def test_devtools_close_unsubscribes(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize")
    before = s.store.listener_count
    dev = FakeFrontEnd(DevTools(s))
    assert s.store.listener_count == before + 1
    dev.widget.close()
    assert s.store.listener_count == before
    dev.clear()
    inst.set_variable("text", "after close")
    await synced()
    assert dev.comm.published == []


# -- RunHistory ------------------------------------------------------------------------------


async def _runs(s: ps.Session, texts: list[str]) -> list[str]:
    ids = []
    for t in texts:
        inst = s.start("summarize", variables={"text": t})
        ids.append((await inst.send()).run_id)
    return ids


async def test_history_shows_the_latest_runs(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    ids = await _runs(s, ["a", "b", "c"])
    fe = FakeFrontEnd(RunHistory(s))
    w = fe.widget
    assert w.query == DEFAULT_QUERY
    assert w.columns == [
        "run_id",
        "prompt_id",
        "model",
        "status",
        "latency_ms",
        "output_tokens",
        "started_at",
    ]
    assert [r[0] for r in w.rows] == ids[::-1]  # newest first
    assert w.total == 3 and w.offset == 0 and w.error == ""
    assert isinstance(w.rows[0][6], str)  # a TIMESTAMP travels as text
    json.dumps(fe.comm.published[0][1]["state"]["rows"])  # JSON-safe


async def test_query_and_paging_ship_one_page(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    fe = FakeFrontEnd(RunHistory(s, page_size=25))
    w = fe.widget
    fe.clear()
    fe.custom(
        {"type": "run_query", "query": "SELECT range AS n, range * 2 AS twice FROM range(100000)"}
    )
    await wait_for(lambda: w.total == 100_000)
    assert w.columns == ["n", "twice"] and w.rows[0] == [0, 0] and len(w.rows) == 25
    (state,) = [u for u in fe.updates("rows")]
    assert len(json.dumps(state)) < 5_000  # one page, not the result

    fe.custom({"type": "page", "offset": 99_990, "limit": 25})
    await wait_for(lambda: w.offset == 99_990)
    assert [r[0] for r in w.rows] == list(range(99_990, 100_000))
    fe.custom({"type": "page", "offset": 50, "limit": 100})
    await wait_for(lambda: w.offset == 50 and w.page_size == 100)
    assert w.rows[0][0] == 50 and len(w.rows) == 100
    fe.custom({"type": "page", "offset": 5_000_000})  # past the end: the last page
    await wait_for(lambda: w.offset == 99_900)
    assert w.rows[-1][0] == 99_999


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("DELETE FROM runs", "only SELECT queries are allowed here, not DELETE"),
        ("INSERT INTO runs (run_id) VALUES ('x')", "not INSERT"),
        ("ATTACH 'other.duckdb' AS o", "not ATTACH"),
        ("COPY runs TO 'out.csv'", "not COPY"),
        ("INSTALL httpfs", "not"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table function(s) not allowed here: read_csv"),
        ("SELECT * FROM '/etc/passwd'", "reading files is not allowed"),
    ],
)
async def test_refused_statement_is_shown_and_changes_nothing(
    tmp_path: Path, query: str, message: str
) -> None:
    s = make_session(tmp_path)
    await _runs(s, ["a", "b"])
    fe = FakeFrontEnd(RunHistory(s))
    w = fe.widget
    rows = w.rows
    fe.custom({"type": "run_query", "query": query})
    await wait_for(lambda: w.error != "")
    assert w.error.startswith("ReadOnlyQueryError: ") and message in w.error
    assert w.query == query  # the box keeps what was typed
    assert w.rows == rows and w.loading is False  # the last good result stays
    assert s.runs.count() == 2


async def test_failing_query_shows_duckdb_error_and_widget_keeps_working(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    await _runs(s, ["a"])
    fe = FakeFrontEnd(RunHistory(s))
    w = fe.widget
    fe.custom({"type": "run_query", "query": "SELECT no_such_column FROM runs"})
    await wait_for(lambda: w.error != "")
    assert w.error.startswith("RunLogError: query failed") and "no_such_column" in w.error
    fe.custom({"type": "run_query", "query": "SELEC 1"})
    await wait_for(lambda: "SELEC" in w.error or "syntax" in w.error.lower())
    fe.custom({"type": "run_query", "query": "SELECT status, count(*) AS n FROM runs GROUP BY 1"})
    await wait_for(lambda: w.columns == ["status", "n"])
    assert w.rows == [["success", 1]] and w.error == ""


async def test_python_api_runs_queries_synchronously(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    await _runs(s, ["a"])
    w = RunHistory(s)
    w.run_query("SELECT count(*) AS n FROM runs")
    assert (w.columns, w.rows, w.total) == (["n"], [[1]], 1)
    w.run_query("DROP TABLE runs")
    assert w.error.startswith("ReadOnlyQueryError")
    assert s.runs.count() == 1


def test_cell_values_are_json_safe() -> None:
    import datetime as dt
    import decimal
    import uuid

    row = [
        decimal.Decimal("1.50"),
        dt.datetime(2024, 1, 2, 3, 4, 5),
        dt.date(2024, 1, 2),
        2**70,
        float("nan"),
        b"\x00\xff",
        uuid.UUID(int=1),
        [1, {"a": dt.time(1, 2)}],
        "x" * 1000,
    ]
    out = json_safe(row, 300)
    json.dumps(out, allow_nan=False)
    assert out[:5] == ["1.50", "2024-01-02 03:04:05", "2024-01-02", str(2**70), "nan"]
    assert out[5] == "\\x00ff" and out[7] == [1, {"a": "01:02:00"}]
    assert len(out[8]) == 300 and out[8].endswith("…")


async def test_row_click_shows_the_full_run(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    (rid,) = await _runs(s, ["the text"])
    fe = FakeFrontEnd(RunHistory(s))
    w = fe.widget
    fe.custom({"type": "select_run", "run_id": rid})
    await wait_for(lambda: w.detail != {})
    d = w.detail
    assert d["run_id"] == rid and d["status"] == "success" and d["model"] == "echo"
    assert d["response"] == "Summarize for Ann: the text"
    assert d["variables"] == [
        {"name": "text", "value": "the text", "source": "instance"},
        {"name": "user_name", "value": "Ann", "source": "default"},
    ]
    assert [m["role"] for m in d["messages"]] == ["system", "user"]
    m = d["metrics"]
    assert m["output_tokens"] == 5 and m["latency_ms"] is not None and "ttft_ms" in m
    assert {"cost_usd", "attempts", "started_at"} <= set(m)
    fe.custom({"type": "select_run", "run_id": None})
    await wait_for(lambda: w.detail == {})
    fe.custom({"type": "select_run", "run_id": "nope"})
    await wait_for(lambda: w.error != "")
    assert w.error.startswith("UnknownRunError")


async def test_two_ticked_rows_give_a_diff(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    a, b, c = await _runs(s, ["one", "two", "three"])
    fe = FakeFrontEnd(RunHistory(s))
    w = fe.widget
    fe.custom({"type": "toggle_compare", "run_id": a})
    await synced()
    assert w.compare_ids == [a] and w.diff == {}
    fe.custom({"type": "toggle_compare", "run_id": b})
    await wait_for(lambda: w.diff != {})
    d = w.diff
    assert (d["a"], d["b"]) == (a, b) and d["same_prompt"] is False
    assert d["variables"] == [{"name": "text", "a": "one", "b": "two"}]
    assert "-Summarize for Ann: one" in d["messages"] and "+Summarize for Ann: two" in d["messages"]
    assert "+Summarize for Ann: two" in d["response"]
    fe.custom({"type": "toggle_compare", "run_id": c})  # a third pick replaces the oldest
    await wait_for(lambda: w.diff.get("b") == c)
    assert w.compare_ids == [b, c]
    fe.custom({"type": "toggle_compare", "run_id": b})
    await wait_for(lambda: w.diff == {})
    assert w.compare_ids == [c]


async def test_rerun_adds_a_row_without_blocking(tmp_path: Path) -> None:
    s = make_session(tmp_path, delay=0.02)
    (rid,) = await _runs(s, ["again please"])
    fe = FakeFrontEnd(RunHistory(s))
    w = fe.widget
    assert w.total == 1
    fe.custom({"type": "rerun", "run_id": rid, "model": None})
    assert w.reruns == [rid]  # scheduled, not awaited
    await wait_for(lambda: fe.replies() != [])
    (done,) = fe.replies()
    assert done["type"] == "rerun_done" and done["ok"] is True and done["status"] == "success"
    new = done["new_run_id"]
    await wait_for(lambda: w.total == 2 and w.detail.get("run_id") == new)
    assert w.rows[0][0] == new and w.highlight == new and w.reruns == []
    assert w.detail["response"] == "Summarize for Ann: again please"
    assert w.detail["variables"][0] == {
        "name": "text",
        "value": "again please",
        "source": "instance",
    }
    assert new in w.notice

    # another model: the echo provider's "echo:other"
    fe.custom({"type": "rerun", "run_id": rid, "model": "echo:other"})
    await wait_for(lambda: len(fe.replies()) == 2 and w.total == 3)
    assert w.rows[0][2] == "other"


async def test_rerun_errors_are_shown(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    (rid,) = await _runs(s, ["x"])
    fe = FakeFrontEnd(RunHistory(s))
    w = fe.widget
    fe.custom({"type": "rerun", "run_id": rid, "model": "nosuch:model"})
    # beside the Re-run button (rerun_error), not in the banner above the query box
    assert w.rerun_error.startswith(f"re-run of {rid} failed: UnknownProviderError")
    assert w.error == "" and w.reruns == []
    fe.custom({"type": "rerun", "run_id": "missing", "model": None})
    await wait_for(lambda: fe.replies() != [])
    assert fe.replies()[0]["ok"] is False
    assert "re-run of missing failed: UnknownRunError" in w.rerun_error and w.reruns == []
    assert w.error == ""
    assert s.runs.count() == 1
    # opening another run clears it: the error was about the run shown before
    w.show_run(rid)
    await wait_for(lambda: w.detail.get("run_id") == rid)
    assert w.rerun_error == ""


async def test_history_front_end_cannot_write_its_traits(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    await _runs(s, ["a"])
    fe = FakeFrontEnd(RunHistory(s))
    before = fe.widget.rows
    fe.update({"rows": [["hacked"]], "query": "DROP TABLE runs", "total": 99})
    assert fe.widget.rows == before and fe.widget.total == 1
    assert fe.widget.query == DEFAULT_QUERY


# -- SweepGrid -------------------------------------------------------------------------------


async def test_sweep_grid_fills_in_as_cells_finish(tmp_path: Path) -> None:
    s = make_session(tmp_path, delay=0.01)
    sw = s.sweep(
        "summarize",
        {"text": ["a b c", "d e f", "g h i"]},
        models=["echo", "echo:other"],
        concurrency=2,
        progress=False,
    )
    fe = FakeFrontEnd(SweepGrid(sw))
    w = fe.widget
    assert w.models == ["echo", "echo:other"] and w.variable_names == ["text"]
    assert [r["variables"] for r in w.rows] == [
        {"text": "a b c"},
        {"text": "d e f"},
        {"text": "g h i"},
    ]
    # nothing started yet: every cell is queued (waiting for a slot counts as queued)
    assert {c["status"] for c in w.cells} == {"queued"} and w.finished is False
    await wait_for(lambda: any(c["status"] == "success" for c in w.cells))
    assert any(c["status"] in ("queued", "running") for c in w.cells)  # live, before the end
    await sw
    await wait_for(lambda: w.finished)
    assert [(c["row"], c["col"]) for c in w.cells] == [(r, m) for r in range(3) for m in range(2)]
    assert all(c["status"] == "success" for c in w.cells)
    assert w.cells[3]["response"] == "Summarize for Ann: d e f"
    assert w.counts == {
        "total": 6,
        "done": 6,
        "errors": 0,
        "cancelled": 0,
        "running": 0,
        "queued": 0,
        "not_run": 0,
        "ended": 6,
    }
    updates = fe.updates("cells")
    # coalesced, and only when a cell starts or ends (2 per cell), not one per token
    assert 2 <= len(updates) <= 13, len(updates)


async def test_sweep_cell_click_shows_the_run(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    sw = await s.sweep("summarize", {"text": ["x", "y"]}, models=["echo"], progress=False)
    fe = FakeFrontEnd(SweepGrid(sw))
    w = fe.widget
    fe.custom({"type": "select", "index": 1})
    await wait_for(lambda: w.detail.get("run_id") is not None)
    assert w.selected == 1
    assert w.detail["run_id"] == sw.cells[1].result.run_id  # type: ignore[union-attr]
    assert w.detail["response"] == "Summarize for Ann: y"
    assert w.detail["cell"] == {
        "index": 1,
        "model": "echo",
        "repeat": 0,
        "variables": {"text": "y"},
    }
    fe.custom({"type": "select", "index": 99})
    await wait_for(lambda: w.error != "")
    assert w.error.startswith("IndexError")
    fe.custom({"type": "select", "index": None})
    assert w.detail == {} and w.selected is None


async def test_sweep_cancel_from_the_grid(tmp_path: Path) -> None:
    s = make_session(tmp_path, delay=0.05)
    sw = s.sweep(
        "summarize",
        {"text": [f"w{i} " * 6 for i in range(8)]},
        models=["echo"],
        concurrency=1,
        progress=False,
    )
    fe = FakeFrontEnd(SweepGrid(sw))
    w = fe.widget
    await wait_for(lambda: s.runs.sql("SELECT count(*) FROM runs").fetchall()[0][0] >= 1)
    t = threading.Thread(target=fe.custom, args=({"type": "cancel"},))  # from a subshell
    t.start()
    t.join()
    await wait_for(lambda: w.finished, timeout=10)
    statuses = [c["status"] for c in w.cells]
    assert "cancelled" in statuses and not {"pending", "queued", "running"} & set(statuses)
    assert w.counts["cancelled"] >= 1 and "cancelling" in w.notice
    # cancelled cells are not counted as done: done is the successes only
    assert w.counts["done"] == statuses.count("success")
    assert w.counts["done"] + w.counts["cancelled"] + w.counts["errors"] == len(statuses)


async def test_sweep_cells_that_never_ran_settle_when_it_ends(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    s.prompts.register(ps.Prompt(id="greet", messages=[ps.user("Hi {{name}}")], model="echo"))
    sw = s.sweep("greet", [{"name": "Ada"}, {}], models=["echo"], progress=False)
    w = SweepGrid(sw)
    await sw
    await wait_for(lambda: w.finished)
    # the cell that could not send (a missing variable) ended "error", with the reason
    assert [c["status"] for c in w.cells] == ["success", "error"]
    assert "name" in (w.cells[1]["error"] or "")
    assert (w.counts["done"], w.counts["errors"]) == (1, 1)
    w.select(1)
    assert w.detail["status"] == "error" and "run_id" not in w.detail
    assert "name" in w.detail["error"]


async def test_sweep_grid_close_unsubscribes(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    sw = s.sweep("summarize", {"text": ["a"]}, models=["echo"], progress=False)
    before = s.store.listener_count
    fe = FakeFrontEnd(SweepGrid(sw))
    assert s.store.listener_count == before + 1
    fe.widget.close()
    fe.clear()
    await sw
    await synced()
    assert s.store.listener_count == before and fe.comm.published == []


async def test_panels_and_instance_widgets_share_a_session(tmp_path: Path) -> None:
    # the instance widgets still work next to the panels on one session
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "z"})
    runner = FakeFrontEnd(PromptRunner(inst))
    FakeFrontEnd(DevTools(s))
    FakeFrontEnd(RunHistory(s))
    runner.custom({"type": "send", "seq": 1, "content": None, "variables": {}})
    await settle(runner)
    assert runner.replies()[0]["ok"] is True


# -- viewing the past, stale selection ---------------------------------------------------------


async def test_panels_mirror_viewing_past(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize", variables={"text": "draft"})
    inst.set_variable("text", "later")
    sw = await s.sweep("summarize", {"text": ["x"]}, models=["echo"], progress=False)
    panels = [DevTools(s), RunHistory(s), SweepGrid(sw)]
    assert [p.viewing_past for p in panels] == [False, False, False]
    s.devtools.jump(s.devtools.first_index + 1)
    await wait_for(lambda: all(p.viewing_past for p in panels))
    s.devtools.resume()
    await wait_for(lambda: not any(p.viewing_past for p in panels))
    for p in panels:
        p.close()


async def test_devtools_drops_a_selection_the_filter_hides(tmp_path: Path) -> None:
    s = make_session(tmp_path)
    inst = s.start("summarize")
    inst.set_variable("text", "final")
    fe = FakeFrontEnd(DevTools(s))
    w = fe.widget
    (index,) = variable_sets(s.devtools, "final")
    w.select(index)
    assert w.detail["index"] == index
    fe.custom({"type": "filter", "action_type": "instances/started", "instance_id": ""})
    assert w.selected is None and w.detail == {}
    assert f"action #{index} is filtered out" in w.notice
