"""Evaluations: datasets, scorers, judges over real HTTP, labels, compare, re-score, CLI."""

from __future__ import annotations

import asyncio
import json
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import promptstate as ps
from promptstate.cli import main
from promptstate.evals.judge import JudgeParseError, parse_verdict
from promptstate.providers import OpenAICompatible

from .fake_llm import FakeLLMServer

REPO = Path(__file__).resolve().parents[1]
QA = ps.Prompt(id="qa", messages=[ps.user("{{ question }}")], model="echo")
ROWS = [
    {"question": "Paris", "expected": "Paris", "topic": "fr"},
    {"question": "Rome", "expected": "Milan", "topic": "it"},
    {"question": '{"a": {"b": [1, 2]}}', "expected": "x", "topic": "json"},
]


@pytest.fixture
def s(tmp_path: Path) -> Any:
    session = ps.Session(db=str(tmp_path / "ev.duckdb"))
    session.prompts.register(QA)
    yield session
    session.close()


def _ds(**kw: Any) -> ps.Dataset:
    return ps.Dataset(ROWS, name="caps", metadata=["topic"], **kw)


def _score(scorer: ps.scorers.Scorer, response: str, expected: Any = None, **run: Any) -> Any:
    from promptstate.evals.dataset import DatasetRow

    result = ps.RunResult(run_id="r", status="success", response=response, **run)
    return scorer.score_sync(result, DatasetRow("x", 0, {}, expected))


# -- datasets -----------------------------------------------------------------------------------


def test_row_ids_are_content_hashes_and_versions_are_stable() -> None:
    a, b = _ds(), _ds()
    assert [r.row_id for r in a] == [r.row_id for r in b] and a.version == b.version
    reordered = ps.Dataset(list(reversed(ROWS)), name="caps", metadata=["topic"])
    assert {r.row_id for r in reordered} == {r.row_id for r in a}
    assert reordered.version != a.version
    dup = ps.Dataset([ROWS[0], ROWS[0]], name="d")
    assert dup.rows[1].row_id == dup.rows[0].row_id + "-2"
    assert a.rows[0].metadata == {"topic": "fr"} and "topic" not in a.rows[0].variables


def test_saving_the_same_rows_twice_is_one_version(s: ps.Session) -> None:
    async def go() -> None:
        await s.evaluate("qa", _ds(), [ps.scorers.equals()])
        await s.evaluate("qa", _ds(), [ps.scorers.equals()])
        await s.evaluate("qa", ps.Dataset(ROWS[:2], name="caps", metadata=["topic"]), [])

    asyncio.run(go())
    versions = s.runs.sql("SELECT version, n_rows FROM datasets ORDER BY n_rows").fetchall()
    assert [n for _, n in versions] == [2, 3]
    assert s.runs.sql("SELECT count(*) FROM dataset_rows").fetchall()[0][0] == 5


def test_dataset_sources_and_bad_columns(tmp_path: Path) -> None:
    csv_file = tmp_path / "d.csv"
    csv_file.write_text("question,expected\nParis,Paris\n")
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text('{"question": "Paris", "expected": "Paris"}\n')
    a, b = ps.Dataset.from_file(csv_file), ps.Dataset.from_file(jsonl)
    assert a.rows[0].row_id == b.rows[0].row_id and a.name == "d"
    pd = pytest.importorskip("pandas")
    assert ps.Dataset.from_df(pd.DataFrame(ROWS), metadata=["topic"]).version == _ds().version
    with pytest.raises(ps.DatasetError, match="'nope'"):
        ps.Dataset(ROWS, metadata=["nope"])
    with pytest.raises(ps.DatasetError, match="'bad col'"):
        ps.Dataset([{"bad col": 1}])
    with pytest.raises(ps.DatasetError, match=r"d\.jsonl"):
        jsonl.write_text("{not json\n")
        ps.Dataset.from_file(jsonl)


def test_unknown_column_is_a_typed_error_or_a_named_warning(s: ps.Session) -> None:
    typo = ps.Dataset([{"questoin": "Paris"}], name="t")
    with pytest.raises(ps.DatasetError, match=r"'questoin'.*did you mean 'question'"):
        s.evaluate("qa", typo, [ps.scorers.equals("x")])
    assert s.runs.sql("SELECT count(*) FROM runs").fetchall()[0][0] == 0
    extra = ps.Dataset([{"question": "Paris", "colour": "red"}], name="t")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(s.evaluate("qa", extra, [ps.scorers.contains("P")]).wait())
    assert any(
        issubclass(w.category, ps.UnusedVariableWarning) and "'colour'" in str(w.message)
        for w in caught
    )


# -- scorers --------------------------------------------------------------------------------------


def test_builtin_scorer_outcomes() -> None:
    sc = ps.scorers
    assert _score(sc.equals(), " Paris\n", "Paris").passed
    assert not _score(sc.equals(), "paris", "Paris").passed
    assert _score(sc.equals(ignore_case=True), "paris", "Paris").passed
    assert _score(sc.contains("ar"), "Paris").passed
    assert (
        _score(sc.icontains("PAR"), "Paris").passed
        and not _score(sc.contains("PAR"), "Paris").passed
    )
    assert _score(sc.regex(r"^\d+$"), "123").passed and not _score(sc.regex(r"^\d+$"), "12a").passed
    assert _score(sc.starts_with("Pa"), "Paris").passed
    assert _score(sc.is_json(), '```json\n{"a": 1}\n```').passed
    bad = _score(sc.is_json(), "{nope")
    assert bad.passed is False and "not JSON" in bad.reason
    schema = sc.json_schema({"type": "object", "required": ["name"]})
    assert _score(schema, '{"name": "x"}').passed
    missing = _score(schema, '{"age": 3}')
    assert not missing.passed and "'name' is a required property" in missing.reason
    assert _score(sc.json_path_equals("$.a.b[1]", 2), '{"a": {"b": [1, 2]}}').passed
    assert _score(sc.json_path_equals("$.a", None), '{"a": null}').passed
    no_expected = _score(sc.json_path_equals("$.a"), '{"a": 1}', None)
    assert no_expected.errored and "no expected value" in no_expected.reason
    assert _score(sc.json_path_equals("$.a"), '{"a": [1]}', "[1]").passed
    sim = _score(sc.similarity(threshold=0.8), "Pariss", "Paris")
    assert sim.passed and 0.8 < sim.value < 1
    assert not _score(sc.length(max=3), "Paris").passed
    assert _score(sc.latency(max_ms=10), "x", latency_ms=5.0).passed
    assert not _score(sc.latency(max_ms=10), "x", latency_ms=50.0).passed
    assert _score(sc.cost(max_usd=0.01), "x", cost_usd=None).errored
    assert not _score(sc.tokens(max_output=2), "x", output_tokens=5).passed


def test_callables_async_and_errors_never_stop_an_eval(s: ps.Session) -> None:
    def boom(run: Any, row: Any) -> bool:
        raise RuntimeError("scorer exploded")

    async def slow_len(run: Any, row: Any) -> float:
        await asyncio.sleep(0)
        return len(run.response) / 10

    def verdict(run: Any, row: Any) -> ps.Score:
        return ps.Score(0.5, True, "half")

    sc = [ps.scorers.scorer(boom), ps.scorers.scorer(slow_len, threshold=0.5), verdict]
    ev = asyncio.run(s.evaluate("qa", _ds(), sc).wait())
    by = {r.scorer: r for r in ev.summary()}
    assert by["boom"].errors == 3 and by["boom"].passed == 0
    assert by["verdict"].mean == 0.5 and by["verdict"].pass_rate == 1.0
    assert by["slow_len"].n == 3
    rows = s.runs.sql("SELECT value, passed, reason FROM scores WHERE scorer = 'boom'").fetchall()
    assert rows == [(None, False, "RuntimeError: scorer exploded")] * 3


def test_scorer_version_follows_code_and_params() -> None:
    a, b, c = ps.scorers.contains("x"), ps.scorers.contains("x"), ps.scorers.contains("y")
    assert a.version == b.version != c.version
    r1, r2 = ps.scorers.llm_rubric("polite?"), ps.scorers.llm_rubric("terse?")
    assert r1.version != r2.version
    with pytest.raises(ps.ScorerError):
        ps.scorers.regex("(")


# -- evaluate, summary, drill-down ---------------------------------------------------------------


def test_evaluate_versions_and_models_summary_with_intervals(s: ps.Session) -> None:
    v2 = ps.Prompt(id="qa", messages=[ps.user("A: {{ question }}")], model="echo")
    ev = asyncio.run(
        s.evaluate(
            [QA, v2], _ds(), [ps.scorers.equals()], models=["echo", "echo:b"], repeat=3
        ).wait()
    )
    assert len(ev.cells) == 2 * 3 * 2 * 3 and ev.done == 36
    summary = ev.summary()
    assert len(summary) == 4
    first = next(r for r in summary if r.prompt_version == QA.version and r.model == "echo")
    assert (first.n, first.passed) == (9, 3)
    assert 0 < first.pass_low < 1 / 3 < first.pass_high < 1
    second = next(r for r in summary if r.prompt_version == v2.version)
    assert second.passed == 0
    row = ev.row(_ds().rows[0].row_id)
    assert row.expected == "Paris" and len(row.runs) == 2 * 2 * 3
    assert (
        s.runs.sql("SELECT count(*) FROM runs WHERE sweep_id = ?", [ev.eval_id]).fetchall()[0][0]
        == 36
    )


def test_cancel_from_another_thread(s: ps.Session) -> None:
    slow = ps.Prompt(
        id="slow", messages=[ps.user("{{ question }} " * 20)], settings={"echo_delay": 0.05}
    )
    s.prompts.register(slow)

    async def go() -> Any:
        ev = s.evaluate("slow", _ds(), [ps.scorers.contains("x")], concurrency=1)
        await asyncio.sleep(0.05)
        await asyncio.to_thread(ev.cancel)
        return await ev

    ev = asyncio.run(go())
    statuses = {c.status for c in ev.cells}
    assert "cancelled" in statuses and ev.done == 3


# -- judges against the fake server -----------------------------------------------------------


def test_llm_judge_runs_are_logged_and_linked(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        provider = OpenAICompatible(name="fake", base_url=server.openai_base_url, api_key="sk-t1")
        session = ps.Session(db=str(tmp_path / "j.duckdb"), providers=[provider])
        session.prompts.register(QA)
        judge = ps.scorers.llm_rubric(
            "Is it right?",
            model="fake:judge",
            messages=[
                ps.system("Grade {{ output }} ({{ question }})."),
                ps.user('{"score": 0.75}'),
            ],
        )
        broken = ps.scorers.llm_rubric("x", model="fake:judge+fault:words=3", name="broken")
        ev = asyncio.run(session.evaluate("qa", _ds(), [judge, broken]).wait())
        rows = session.runs.sql(
            "SELECT s.scorer, s.value, s.passed, s.source, s.reason, r.prompt_id, r.provider "
            "FROM scores s JOIN runs r ON r.run_id = s.judge_run_id ORDER BY s.scorer"
        ).fetchall()
        assert {x.errors for x in ev.summary() if x.scorer == "broken"} == {3}
        assert len(server.requests) == 6
        graded = sorted(r.body["messages"][0]["content"] for r in server.requests if not r.faults)
        assert graded == [f"Grade {q} ({q})." for q in sorted(r["question"] for r in ROWS)]
        session.close()
    good = [r for r in rows if r[0] == "llm_rubric"]
    assert len(good) == 3 and all(r[1] == 0.75 and r[2] and r[3] == "judge" for r in good)
    assert {r[5] for r in rows} == {"judge.llm_rubric", "judge.broken"} and rows[0][6] == "fake"
    bad = [r for r in rows if r[0] == "broken"]
    assert len(bad) == 3 and all(r[1] is None and r[2] is False for r in bad)
    assert "no verdict" in bad[0][4] and "word1 word2 word3" in bad[0][4]


def test_parse_verdict_forms() -> None:
    assert parse_verdict('noise {"score": 0.2, "reason": "meh"}').passed is False
    assert parse_verdict('{"pass": true}').value == 1.0
    assert parse_verdict("SCORE: 0.9\nbecause").value == 0.9
    assert parse_verdict("FAIL - wrong").passed is False
    with pytest.raises(JudgeParseError, match=r"outside 0\.\.1"):
        parse_verdict('{"score": 7}')
    with pytest.raises(JudgeParseError, match="no verdict"):
        parse_verdict("I think it is fine")


def test_pairwise_judge(s: ps.Session) -> None:
    judge = ps.scorers.judge_pairwise(
        "better?",
        model="echo",
        messages=[ps.system("A={{ a }} B={{ b }}"), ps.user('{"winner": "B"}')],
    )

    async def go() -> Any:
        a = await s.evaluate("qa", _ds(), [ps.scorers.equals()])
        b = await s.evaluate("qa", _ds(), [ps.scorers.equals()])
        return await s.judge_pairwise(a, b, judge)

    rows = asyncio.run(go())
    assert all(r.runs[0].scores["pairwise"].value == 1.0 for r in rows)
    assert all(r.runs[0].scores["pairwise"].judge_run_id for r in rows)


# -- labels, re-scoring, compare -----------------------------------------------------------------


def test_human_labels_are_scores(s: ps.Session) -> None:
    ev = asyncio.run(s.evaluate("qa", _ds(), [ps.scorers.equals()]).wait())
    run_id = ev.rows()[0].runs[0].run_id
    assert run_id is not None
    s.label(run_id, thumbs="down", comment="too short")
    reply = s.label_message({"type": "label", "run_id": run_id, "value": 0.25, "name": "care"})
    assert reply["ok"] is True
    assert s.label_message({"run_id": "missing", "thumbs": "up"})["ok"] is False
    assert s.label_message({"run_id": run_id, "thumbs": "sideways"})["ok"] is False
    with pytest.raises(ps.UnknownRunError):
        s.label("missing", thumbs="up")
    got = s.runs.sql(
        "SELECT scorer, value, passed, reason FROM scores WHERE source = 'human' ORDER BY scorer"
    ).fetchall()
    assert got == [("care", 0.25, None, None), ("human", 0.0, False, "too short")]
    assert "human" in ev.row(ev.rows()[0].row_id).runs[0].scores


def test_rescore_and_cached_rerun_call_no_model(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        provider = OpenAICompatible(name="fake", base_url=server.openai_base_url, api_key="sk-t2")
        session = ps.Session(db=str(tmp_path / "c.duckdb"), providers=[provider])
        session.prompts.register(QA)

        async def go() -> Any:
            ev = await session.evaluate(
                "qa", _ds(), [ps.scorers.equals()], models=["fake:m"], cache=True
            )
            calls = len(server.requests)
            await session.score(ev, [ps.scorers.contains("ar")])
            assert len(server.requests) == calls
            again = await session.evaluate(
                "qa", _ds(), [ps.scorers.contains("ar")], models=["fake:m"], cache=True
            )
            assert len(server.requests) == calls == 3
            via_sql = await session.score(
                "SELECT run_id FROM runs WHERE prompt_id = 'qa'", [ps.scorers.length(max=4)]
            )
            return ev, again, via_sql

        ev, again, via_sql = asyncio.run(go())
        hits = session.runs.sql(
            "SELECT count(*) FROM runs WHERE sweep_id = ? AND cache_hit", [again.eval_id]
        ).fetchall()[0][0]
        assert hits == 3
        assert {r.scorer for r in ev.summary()} == {"equals", "contains", "length"}
        assert via_sql is None
        assert (
            session.runs.sql("SELECT count(*) FROM scores WHERE scorer = 'length'").fetchall()[0][0]
            == 6
        )
        session.close()


def test_compare_finds_regressions_and_improvements(s: ps.Session) -> None:
    worse = ps.Prompt(id="qa", messages=[ps.user("{{ question }}!")], model="echo")

    async def go() -> Any:
        a = await s.evaluate(QA, _ds(), [ps.scorers.equals()])
        b = await s.evaluate(worse, _ds(), [ps.scorers.equals()])
        return a, b

    a, b = asyncio.run(go())
    cmp = ps.compare(a, b)
    assert len(cmp) == 3
    assert [c.row_id for c in cmp.regressions] == [_ds().rows[0].row_id]
    assert len(cmp.changed()) == 1 and not cmp.improvements
    change = cmp.regressions[0]
    assert "+Paris!" in change.diff() and "-Paris" in change.diff()
    assert "+Paris!" in change.expected_diff()
    back = ps.compare(b, s.load_eval(a.eval_id))
    assert len(back.improvements) == 1
    with pytest.raises(ps.UnknownEvalError):
        s.load_eval("nope")


# -- the command line ------------------------------------------------------------------------------


def test_cli_eval_passes_writes_junit_and_json(tmp_path: Path, capsys: Any) -> None:
    out, js = tmp_path / "out.xml", tmp_path / "out.json"
    code = main(
        ["eval", str(REPO / "examples/eval.yaml"), "--db", str(tmp_path / "e.duckdb"),
         "--junit", str(out), "--json", str(js)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
    suite = ET.parse(out).getroot()
    assert suite.tag == "testsuite" and suite.get("failures") == "0"
    assert int(suite.get("tests") or 0) == len(suite.findall("testcase")) == 5
    report = json.loads(js.read_text())
    assert report["ok"] is True and len(report["summary"]) == 5
    assert "equals" in capsys.readouterr().out


def _write_eval(tmp_path: Path, body: str) -> str:
    (tmp_path / "p.yaml").write_text(
        "id: qa\nmodel: echo\nmessages:\n  - role: user\n    content: '{{ question }}'\n"
    )
    (tmp_path / "d.csv").write_text("question,expected\nParis,Paris\nRome,Milan\n")
    path = tmp_path / "e.yaml"
    path.write_text(body)
    return str(path)


def test_cli_eval_fails_a_threshold_with_exit_1(tmp_path: Path) -> None:
    path = _write_eval(
        tmp_path,
        "prompts: p.yaml\ndataset: d.csv\nscorers: [equals]\nthresholds: {min_pass_rate: 0.9}\n",
    )
    out = tmp_path / "o.xml"
    assert main(["eval", path, "--db", str(tmp_path / "x.duckdb"), "--junit", str(out)]) == 1
    case = ET.parse(out).getroot().find("testcase")
    assert case is not None
    failure = case.find("failure")
    assert failure is not None and "min_pass_rate 0.9" in (failure.get("message") or "")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("prompts: p.yaml\ndataset: d.csv\nscorers: [equals\n", "not valid YAML"),
        ("prompts: p.yaml\ndataset: d.csv\nscorers: [equalz]\n", "'scorers[0]'"),
        ("prompts: p.yaml\ndataset: nope.csv\nscorers: [equals]\n", "'dataset'"),
        ("prompts: p.yaml\nscorers: [equals]\n", "'dataset'"),
        ("prompts: p.yaml\ndataset: d.csv\nscorers: [{regex: {pattern: '('}}]\n", "'scorers[0]'"),
        ("prompts: p.yaml\ndataset: d.csv\nscorers: [equals]\nthresholds: {min_pas: 1}\n",
         "'thresholds.min_pas'"),
    ],
)  # fmt: skip
def test_cli_eval_bad_files_exit_2_naming_the_field(
    tmp_path: Path, capsys: Any, body: str, field: str
) -> None:
    path = _write_eval(tmp_path, body)
    db = tmp_path / "x.duckdb"
    assert main(["eval", path, "--db", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "e.yaml" in err and field in err
    assert not db.exists()
