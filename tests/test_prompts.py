from __future__ import annotations

import json
from pathlib import Path

import pytest

import promptstate as ps


def test_prompt_validation_errors_are_typed() -> None:
    with pytest.raises(ps.InvalidPromptError):
        ps.Prompt(id="", messages=[ps.user("x")])
    with pytest.raises(ps.InvalidPromptError):
        ps.Prompt(id="x", messages=[])
    with pytest.raises(ps.InvalidPromptError):
        ps.Prompt(id="x", messages=["not a message"])  # type: ignore[list-item]
    with pytest.raises(ps.InvalidPromptError):
        ps.Message("robot", "x")
    with pytest.raises(ps.TemplateError, match="prompt 'x', user message"):
        ps.Prompt(id="x", messages=[ps.user("{{ broken")])
    with pytest.raises(ps.InvalidPromptError):
        ps.Prompt(id="x", messages=[ps.user("x")], settings={"f": object()})


def test_version_is_a_content_hash() -> None:
    a = ps.Prompt(id="p", messages=[ps.user("{{x}}")])
    b = ps.Prompt(id="p", messages=[ps.user("{{x}}")], description="same content")
    c = ps.Prompt(id="p", messages=[ps.user("{{x}}!")])
    assert a.version == b.version != c.version
    assert ps.Prompt(id="p", messages=[ps.user("x")], version="v7").version == "v7"


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_yaml_and_json_files(tmp_path: Path, session: ps.Session) -> None:
    _write(
        tmp_path / "a.yaml",
        """
id: greet
model: echo
variables: {name: World}
messages:
  - role: system
    content: Be kind.
  - role: user
    content: "Hello {{ name }}"
""",
    )
    _write(
        tmp_path / "b.json",
        json.dumps(
            {
                "prompts": [
                    {"id": "j1", "messages": [{"role": "user", "content": "{{q}}"}]},
                    {
                        "id": "j2",
                        "messages": [{"role": "user", "content": "two"}],
                        "settings": {"temperature": 0},
                    },
                ]
            }
        ),
    )
    loaded = session.prompts.load(tmp_path)
    assert sorted(p.id for p in loaded) == ["greet", "j1", "j2"]
    inst = session.start("greet")
    assert inst.messages[-1].content == "Hello World"
    assert "greet" in session.prompts.ids() and "summarize" in session.prompts.ids()


def test_file_prompt_refresh_picks_up_edits(tmp_path: Path, session: ps.Session) -> None:
    f = _write(tmp_path / "p.yml", "id: p\nmessages: [{role: user, content: v1}]\n")
    session.prompts.load(f)
    a = session.start("p")
    _write(f, "id: p\nmessages: [{role: user, content: v2}]\n")
    b = session.start("p")
    assert b.messages[-1].content == "v1"  # cached: fetched once
    c = session.start("p", refresh=True)
    assert c.messages[-1].content == "v2"
    assert a.messages[-1].content == "v1", "a running instance keeps its prompt version"
    assert session.prompts.fetch_count["p"] == 2


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("id: [unclosed", "not valid YAML"),
        ("- 1\n- 2\n", "expected a mapping"),
        ("id: x\n", "missing field 'messages'"),
        ("id: x\nmessages: [{role: user}]\n", "exactly 'role' and 'content'"),
        ("id: x\nmessages: [{role: user, content: '{{ x'}]\n", "malformed template"),
        ("id: x\nmessages: [{role: user, content: hi}]\nextra: 1\n", "unknown field"),
        ("id: x\nmessages: hi\n", "must be a list"),
        ("id: x\nmodel: 3\nmessages: [{role: user, content: hi}]\n", "'model' must be a string"),
        ("a: &a [*a]\n", ""),
    ],
)
def test_malformed_prompt_files_name_path_and_reason(
    tmp_path: Path, session: ps.Session, text: str, reason: str
) -> None:
    f = _write(tmp_path / "bad.yaml", text)
    before = session.store.get_state()
    with pytest.raises(ps.PromptFileError) as info:
        session.prompts.load(f)
    assert str(f) in str(info.value)
    assert reason in str(info.value)
    assert session.store.get_state() is before


def test_missing_path(tmp_path: Path, session: ps.Session) -> None:
    with pytest.raises(ps.PromptFileError, match="no such file"):
        session.prompts.load(tmp_path / "nope")


def test_prompts_stored_in_db_are_a_source(tmp_path: Path) -> None:
    db = str(tmp_path / "p.duckdb")
    with ps.Session(db=db) as s:
        s.prompts.save(ps.Prompt(id="stored", messages=[ps.user("from db {{x}}")]))
    with ps.Session(db=db) as s2:
        inst = s2.start("stored", variables={"x": "!"})
        assert inst.messages[-1].content == "from db !"
        assert s2.prompts.fetch_count == {"stored": 1}
        s2.start("stored")
        assert s2.prompts.fetch_count == {"stored": 1}


def test_reregistering_a_changed_prompt_uses_the_new_version(session: ps.Session) -> None:
    session.prompts.register(ps.Prompt(id="r", messages=[ps.user("one")]))
    a = session.start("r")
    session.prompts.register(ps.Prompt(id="r", messages=[ps.user("two")]))
    b = session.start("r")
    assert (a.messages[-1].content, b.messages[-1].content) == ("one", "two")
