from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import promptstate as ps
from promptstate.models.template import escape, parse, render, variables_of


def test_render_with_whitespace_inside_braces() -> None:
    assert (
        render("Hi {{name}} / {{  name  }} / {{\tname\n}}", {"name": "Ada"}) == "Hi Ada / Ada / Ada"
    )


def test_single_braces_json_and_code_pass_through() -> None:
    tpl = 'Return JSON like {"a": {"b": [1, 2]}} for {{ x }}; def f(): return {k: v}; }}'
    assert (
        render(tpl, {"x": "X"})
        == 'Return JSON like {"a": {"b": [1, 2]}} for X; def f(): return {k: v}; }}'
    )


def test_literal_double_brace_escape() -> None:
    assert render("a {{ '{{' }} b }}", {}) == "a {{ b }}"
    assert escape("x {{ y }}") == "x {{ '{{' }} y }}"


def test_values_are_never_reparsed_or_evaluated() -> None:
    out = render("{{a}}", {"a": "{{ b }} __import__('os').system('x')"})
    assert out == "{{ b }} __import__('os').system('x')"


@pytest.mark.parametrize(
    "bad", ["{{", "{{ }}", "{{ 1x }}", "{{ a b }}", "{{ a.b }}", "x {{ a", "{{{a}}}"]
)
def test_malformed_templates_raise_typed_error_with_position(bad: str) -> None:
    with pytest.raises(ps.TemplateError) as info:
        parse(bad)
    assert "line 1" in str(info.value)
    assert isinstance(info.value, ps.PromptStateError)


def test_missing_variables_named_all() -> None:
    with pytest.raises(ps.MissingVariablesError) as info:
        render("{{a}} {{b}} {{c}}", {"b": "x"})
    assert info.value.missing == ("a", "c")


def test_variables_of() -> None:
    assert variables_of("{{a}} {{ b }} {{ '{{' }} c }}") == {"a", "b"}


@given(st.text())
@settings(max_examples=300)
def test_escape_roundtrip(text: str) -> None:
    assert render(escape(text), {}) == text


@given(st.text(alphabet=st.sampled_from(list("{}ab '\n\\x"))))
@settings(max_examples=500)
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        t = parse(text)
    except ps.TemplateError:
        return
    render(text, {n: "v" for n in t.names})


def test_huge_template_renders() -> None:
    big = "word " * 200_000 + "{{x}}"
    assert render(big, {"x": "end"}).endswith("word end")
