"""Devtools: history, jump/resume, skip, export/import, restore_run, runs.get/diff/rerun."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import promptstate as ps
from promptstate.core.codec import action_from_json
from promptstate.core.reducers import reduce
from promptstate.core.serialize import state_from_dict, state_to_dict
from promptstate.devtools.recorder import HistoryIndexError

from .conftest import SUMMARIZE


def _fill(session: ps.Session) -> ps.Instance:
    inst = session.start("summarize", variables={"text": "one", "user_name": "Ann"})
    inst.set_variable("text", "two")
    inst.set_variable("text", "three")
    asyncio.run(inst.send())
    return inst


def test_actions_are_recorded_with_states(session: ps.Session) -> None:
    inst = _fill(session)
    acts = session.devtools.actions
    types = [a.type for a in acts]
    assert types[:3] == ["prompts/fetch_pending", "prompts/fetch_fulfilled", "instances/started"]
    assert "runs/execute_pending" in types and types[-1] == "runs/execute_fulfilled"
    sets = [a for a in acts if a.type == "instances/variable_set"]
    assert [a.payload["value"] for a in sets] == ["two", "three"]
    assert all(a.instance_id == inst.id for a in sets)
    st = session.devtools.state_at(sets[0].index)
    assert st.instances[inst.id].values["text"] == "two"
    assert session.devtools.latest_state() is session.store.get_state()
    assert '"value": "two"' in sets[0].summary


def test_jump_and_resume_move_the_live_state(session: ps.Session) -> None:
    inst = _fill(session)
    first_set = next(a for a in session.devtools.actions if a.type == "instances/variable_set")
    seen: list[str | None] = []
    session.store.subscribe(lambda: seen.append(inst.variables["text"].value))
    session.devtools.jump(first_set.index)
    assert inst.variables["text"].value == "two"
    assert session.devtools.position == first_set.index
    assert seen[-1] == "two", "subscribers (widgets) follow a jump"
    session.devtools.resume()
    assert inst.variables["text"].value == "three"
    assert session.devtools.position is None


def test_dispatch_while_jumped_returns_to_latest_first(session: ps.Session) -> None:
    inst = _fill(session)
    first_set = next(a for a in session.devtools.actions if a.type == "instances/variable_set")
    session.devtools.jump(first_set.index)
    inst.set_variable("user_name", "Bob")
    assert session.devtools.position is None
    assert inst.variables["text"].value == "three" and inst.variables["user_name"].value == "Bob"


def test_skip_recomputes_later_states_without_effects(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "a"})
    inst.set_variable("user_name", "Ann")
    inst.set_variable("text", "b")
    idx = next(
        a.index
        for a in session.devtools.actions
        if a.type == "instances/variable_set" and a.payload["name"] == "user_name"
    )
    assert session.devtools.skip(idx) is True
    assert inst.variables["user_name"].value is None
    assert inst.variables["text"].value == "b"
    assert session.devtools.skip(idx) is False
    assert inst.variables["user_name"].value == "Ann"


def test_max_age_folds_old_entries_into_the_base(tmp_path: Path) -> None:
    s = ps.Session(history=5)
    s.prompts.register(SUMMARIZE)
    inst = s.start("summarize")
    for i in range(20):
        inst.set_variable("text", str(i))
    assert len(s.devtools.actions) == 5
    assert s.devtools.first_index == s.devtools.last_index - 4
    assert s.devtools.base_state().instances[inst.id].values["text"] == "14"
    with pytest.raises(HistoryIndexError):
        s.devtools.state_at(0)
    with pytest.raises(ps.PromptStateError):
        s.devtools.jump(10_000)


def test_export_import_round_trip_and_replay_determinism(
    session: ps.Session, tmp_path: Path
) -> None:
    _fill(session)
    text = session.devtools.export()
    data = json.loads(text)
    state = state_from_dict(data["base_state"])
    for a in data["actions"]:
        state = reduce(state, action_from_json(a["type"], a["payload"]))
    assert state == session.store.get_state()
    assert state_to_dict(state) == state_to_dict(session.store.get_state())
    restored = ps.Session.from_export(text, db=str(tmp_path / "other.duckdb"))
    assert restored.store.get_state() == session.store.get_state()
    assert [a.type for a in restored.devtools.actions] == [a.type for a in session.devtools.actions]
    (inst,) = restored.instances
    assert inst.variables["text"].value == "three"
    assert inst.messages[-1].content == "Summarize for Ann: three"
    restored.close()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t[: len(t) // 2], "not valid JSON"),
        (lambda t: "[]", "expected a JSON object"),
        (lambda t: t.replace('"version": 2', '"version": 99'), "checksum|version"),
        (lambda t: t.replace('"three"', '"hacked"'), "checksum"),
        (lambda t: json.dumps({**json.loads(t), "format": "other"}), "format"),
        (lambda t: json.dumps({**json.loads(t), "injected": 1}), "checksum"),
    ],
)
def test_corrupt_imports_raise_and_change_nothing(
    session: ps.Session, mutate, message: str
) -> None:  # type: ignore[no-untyped-def]
    _fill(session)
    before_state = session.store.get_state()
    before_actions = session.devtools.actions
    with pytest.raises(ps.StateImportError, match=message):
        session.devtools.import_(mutate(session.devtools.export()))
    assert session.store.get_state() is before_state
    assert session.devtools.actions == before_actions


def test_tampered_payload_with_valid_checksum_is_rejected(session: ps.Session) -> None:
    from promptstate.devtools.export import _checksum

    _fill(session)
    data = json.loads(session.devtools.export())
    data["actions"][3]["payload"] = {"nonsense": True}
    data["checksum"] = _checksum(data)
    before = session.store.get_state()
    with pytest.raises(ps.StateImportError, match=r"unexpected field|missing field"):
        session.devtools.import_(json.dumps(data))
    data["actions"][3] = {
        "type": "evil/action",
        "payload": {},
        "index": data["actions"][3]["index"],
    }
    data["checksum"] = _checksum(data)
    with pytest.raises(ps.StateImportError, match="unknown action type"):
        session.devtools.import_(json.dumps(data))
    assert session.store.get_state() is before


def test_restore_run_brings_back_variables_and_conversation(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "first", "user_name": "Ann"})
    asyncio.run(inst.send())
    r2 = asyncio.run(inst.send("follow up"))
    inst.set_variable("text", "edited later")
    row = session.runs.get(r2.run_id)
    assert row["action_index"] > 0 and row["state_hash"]
    back = session.devtools.restore_run(r2.run_id)
    assert back.id != inst.id
    assert back.variables["text"].value == "first"
    assert [m.role for m in back.messages] == ["system", "user", "assistant"]
    again = asyncio.run(back.send("follow up"))
    assert again.messages == r2.messages
    assert session.runs.get(again.run_id)["state_hash"] == row["state_hash"]
    same = session.devtools.restore_run(r2.run_id, into=inst)
    assert same.id == inst.id and inst.variables["text"].value == "first"
    with pytest.raises(ps.UnknownRunError):
        session.devtools.restore_run("nope")


def test_runs_get_diff_rerun(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "alpha", "user_name": "Ann"})
    a = asyncio.run(inst.send())
    inst.set_variable("text", "beta")
    b = asyncio.run(inst.send())
    rec = session.runs.get(a.run_id)
    assert rec.variables["text"] == ("alpha", "instance") and rec.status == "success"
    d = session.runs.diff(a.run_id, b.run_id)
    assert d.variables == {"text": ("alpha", "beta")}
    assert "-Summarize for Ann: alpha" in d.messages and "+Summarize for Ann: beta" in d.response
    assert not d.same_prompt
    re = asyncio.run(session.runs.rerun(a.run_id))
    assert re.response == a.response and re.run_id != a.run_id
    assert session.runs.diff(a.run_id, re.run_id).same_prompt
    other = asyncio.run(session.runs.rerun(a.run_id, model="echo:other"))
    assert other.model == "other"
    with pytest.raises(ps.UnknownRunError):
        session.runs.get("missing")


def test_rerun_of_an_old_prompt_version_uses_that_version(tmp_path: Path) -> None:
    db = str(tmp_path / "v.duckdb")
    with ps.Session(db=db) as s1:
        s1.prompts.register(ps.Prompt(id="p", messages=[ps.user("v1 {{x}}")]))
        r = asyncio.run(s1.start("p", variables={"x": "!"}).send())
    with ps.Session(db=db) as s2:
        s2.prompts.register(ps.Prompt(id="p", messages=[ps.user("v2 {{x}}")]))
        again = asyncio.run(s2.runs.rerun(r.run_id))
        assert again.response == "v1 !"
        assert s2.start("p", variables={"x": "?"}).messages[-1].content == "v2 ?"


def test_export_never_contains_api_keys(tmp_path: Path) -> None:
    from promptstate.providers import OpenAICompatible

    key = "sk-export-SECRET-abcdef123456"
    s = ps.Session(
        providers=[OpenAICompatible(name="x", base_url="http://127.0.0.1:9/v1", api_key=key)]
    )
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
    inst = s.start("p", variables={"x": f"user pasted {key} by mistake"})
    asyncio.run(inst.send())
    text = s.devtools.export()
    assert key not in text and "[redacted]" in text


def test_records_window_and_run_actions_name_their_instance(session: ps.Session) -> None:
    inst = _fill(session)
    last = session.devtools.last_index
    window = session.devtools.records(last - 2, last + 1)
    assert [r.index for r in window] == [last - 2, last - 1, last]
    run_actions = [a for a in session.devtools.actions if a.type.startswith("runs/")]
    assert run_actions and all(a.instance_id == inst.id for a in run_actions)


def test_rerun_does_not_grow_the_store(session: ps.Session) -> None:
    inst = session.start("summarize", variables={"text": "a", "user_name": "b"})
    run = asyncio.run(inst.send())
    for _ in range(3):
        asyncio.run(session.runs.rerun(run.run_id))
    assert session.instances == [inst]
    assert session.runs.count() == 4
