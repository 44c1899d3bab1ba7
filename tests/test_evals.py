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
from promptstate.runlog.evalstore import SCORE_COLUMNS

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


# -- re-scoring in batches: the same rows as run by run ------------------------------------------

_VARIED = [
    ("success", "Paris", 5.0, 0.001, 3, None),
    ("success", " paris \n", 150.0, None, 9, None),
    ("success", "ünïcödé ✓ 東京 12", None, 0.5, None, None),
    ("success", "", 0.0, 0.0, 0, None),
    ("success", None, 99.5, None, 1, None),  # NULL response: read back as ""
    ("success", '{"a": {"b": [1, 2]}, "name": "x"}', 20.0, 0.002, 4, None),
    ("success", '```json\n{"name": "Paris"}\n```', 1e6, None, 2, None),
    ("success", "12345 ok " * 40, 7.25, 0.02, 400, None),
    ("error", None, 3.0, None, None, "HTTP 500 with key sk-rescore-secret-1"),
    ("cancelled", "partial", None, None, None, None),
    ("interrupted", None, None, None, None, ""),
]


def _varied_runs(session: ps.Session) -> list[str]:
    from promptstate.models.redact import add_secret

    add_secret("sk-rescore-secret-1")
    ids = []
    for i, (status, response, latency, cost, out_tokens, error) in enumerate(_VARIED):
        run = ps.RunResult(
            run_id=f"v{i:02d}",
            prompt_id="varied",
            status=status,
            response=response,  # type: ignore[arg-type]
            latency_ms=latency,
            cost_usd=cost,
            input_tokens=None if out_tokens is None else 10,
            output_tokens=out_tokens,
            error=error,
            variables={"q": (f"question {i} ✓", "instance")},
            messages=(ps.ChatMessage("user", f"question {i}"),),
        )
        session.runlog.write_run(run)
        ids.append(run.run_id)
    session.runlog.flush()
    return ids


def _builtins() -> list[list[ps.scorers.Scorer]]:
    """Every built-in with fixed arguments, in groups of distinct names."""
    sc = ps.scorers
    schema = {"type": "object", "required": ["name"]}
    return [
        [
            sc.equals("Paris"),
            sc.contains("ar"),
            sc.icontains("PAR"),
            sc.starts_with("Pa"),
            sc.regex(r"\d+"),
            sc.is_json(),
            sc.json_schema(schema),
            sc.json_path_equals("$.a.b[1]", 2),
            sc.similarity("Paris", threshold=0.5),
            sc.length(min=1, max=20),
            sc.latency(max_ms=100),
            sc.cost(max_usd=0.01),
            sc.tokens(max_output=5, max_total=12),
        ],
        [
            sc.equals("paris", ignore_case=True, strip=False),
            sc.contains("東京"),
            sc.starts_with(" pa", strip=False),
            sc.regex(r"^\d+$", full=True),
            sc.length(max=3),
            sc.tokens(max_input=5),
        ],
        [sc.equals(" PARIS", ignore_case=True), sc.contains(["b", 1]), sc.length(min=0)],
    ]


def _per_run_rows(session: ps.Session, ids: list[str], scorers: list[Any]) -> set[tuple[Any, ...]]:
    """What scoring each run on its own (``score_rows``, as an eval cell does) records."""
    from promptstate.evals.dataset import DatasetRow
    from promptstate.evals.evaluate import _check_scorers, score_rows, scores_to_rows
    from promptstate.evals.scoring import ScoreContext

    rt = session.runtime
    checked = _check_scorers(rt, scorers)
    by_name = {s.name: s for s in checked}
    out = set()
    for k, rid in enumerate(ids):
        run = rt.reader.get_run(rid)
        assert run is not None
        row = DatasetRow(rid, k, {n: v for n, (v, _s) in run.variables.items()})
        got = asyncio.run(score_rows(checked, run, row, ScoreContext(rt, None)))
        for r in scores_to_rows(rid, got, by_name, None, rt.session_id, 0.0):
            out.add(tuple(r[c] for c in _COMPARED))
    return out


# every scores column but the ones a write stamps itself (id, time, eval and session)
_COMPARED = tuple(
    c for c in SCORE_COLUMNS if c not in ("score_id", "created_at", "eval_id", "session_id")
)


def _written(session: ps.Session, where: str = "TRUE") -> set[tuple[Any, ...]]:
    cols = ", ".join(_COMPARED)
    return set(session.runs.sql(f"SELECT {cols} FROM scores WHERE {where}").fetchall())


def test_rescore_batch_rows_equal_the_per_run_rows_for_every_builtin(tmp_path: Path) -> None:
    session = ps.Session(db=str(tmp_path / "b.duckdb"))
    ids = _varied_runs(session)
    for k, scorers in enumerate(_builtins()):
        assert all(s.batch is not None for s in scorers)  # no RunResult built for these
        asyncio.run(session.score("SELECT * FROM runs WHERE prompt_id = 'varied'", scorers))
        written = _written(session, f"scorer_version IN {tuple(s.version for s in scorers)}")
        assert written == _per_run_rows(session, ids, scorers), k
        assert len(written) == len(ids) * len(scorers)
    written = _written(session)
    # the rows carry real outcomes, not one default
    outcomes = {(r[1], r[4], r[8]) for r in written}
    assert ("contains", True, False) in outcomes and ("contains", False, False) in outcomes
    assert ("latency", False, True) in outcomes  # latency unknown: an error score
    assert ("is_json", True, False) in outcomes and ("json_schema", True, False) in outcomes
    reasons = {r[5] for r in written if r[0] == "v08"}
    assert reasons == {"run ended error: HTTP 500 with key [redacted]"}
    assert {r[5] for r in written if r[0] == "v10"} == {"run ended interrupted:"}
    session.close()


def test_rescore_batch_falls_back_run_by_run_and_mixes_with_callables(tmp_path: Path) -> None:
    session = ps.Session(db=str(tmp_path / "m.duckdb"))
    ids = _varied_runs(session)

    def picky(run: Any, row: Any) -> float:
        if "東京" in run.response:
            raise ValueError(f"no unicode please: {run.response[:3]}")
        return len(run.response) / 10

    async def later(run: Any, row: Any) -> bool:
        await asyncio.sleep(0)
        return run.latency_ms is not None and run.latency_ms < 50

    # contains() wants each row's expected: runs outside an eval have none, so the
    # batch check raises and every run is scored (and errors) on its own
    sync = [ps.scorers.contains(), ps.scorers.scorer(picky, threshold=0.5), ps.scorers.regex("k")]
    mixed = [ps.scorers.length(max=8), ps.scorers.scorer(later), ps.scorers.equals("Paris")]
    for scorers in (sync, mixed):
        asyncio.run(session.score("SELECT * FROM runs", scorers))
        names = ", ".join(f"'{s.name}'" for s in scorers)
        assert _written(session, f"scorer IN ({names})") == _per_run_rows(session, ids, scorers)
    errors = session.runs.sql(
        "SELECT run_id, reason FROM scores WHERE scorer = 'picky' AND errored"
    ).fetchall()
    assert errors == [("v02", "ValueError: no unicode please: ünï")]
    no_expected = session.runs.sql(
        "SELECT count(*), min(reason) FROM scores WHERE scorer = 'contains' AND errored"
    ).fetchall()[0]
    assert no_expected[0] == 8 and no_expected[1].startswith("ScorerError: no expected value")
    session.close()


_EV_SCORES = (
    "SELECT scorer, run_id, value, passed, reason, errored, scorer_version "
    "FROM scores WHERE eval_id = ?"
)


def _by_cell(s: ps.Session, eval_id: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    return {(r[0], r[1]): r[2:] for r in s.runs.sql(_EV_SCORES, [eval_id]).fetchall()}


def test_rescore_of_an_eval_batches_expected_values_like_its_cells(s: ps.Session) -> None:
    rows = [*ROWS, {"question": "東京 ✓", "expected": "東京", "topic": "jp"}]
    ds = ps.Dataset(rows, name="uni", metadata=["topic"])
    scorers = [ps.scorers.equals(), ps.scorers.contains(), ps.scorers.starts_with()]
    ev = asyncio.run(s.evaluate("qa", ds, scorers).wait())
    cells = _by_cell(s, ev.eval_id)
    s.runs.sql("DELETE FROM scores")
    asyncio.run(s.score(ev, scorers))
    again = _by_cell(s, ev.eval_id)
    assert again == cells and len(cells) == 12
    assert sorted(v[1] for v in cells.values()) == [False] * 7 + [True] * 5


def test_score_many_builds_a_run_only_when_a_check_needs_one() -> None:
    from promptstate.evals.dataset import DatasetRow
    from promptstate.evals.scoring import RunBatch

    texts = ["Paris", "", "東京 ✓", '{"name": 1}', "no"]
    runs = [
        ps.RunResult(run_id=f"r{i}", status="success", response=t, latency_ms=i * 40.0)
        for i, t in enumerate(texts)
    ]
    rows = [DatasetRow(f"r{i}", i, {}, t[:2] or "x") for i, t in enumerate(texts)]
    built: list[int] = []

    def run(k: int) -> ps.RunResult:
        built.append(k)
        return runs[k]

    batch = RunBatch(len(runs), lambda c: [getattr(r, c) for r in runs], run, rows.__getitem__)
    idx = [0, 2, 3, 4]
    sc = ps.scorers
    for s in (sc.contains("ar"), sc.contains(), sc.equals(), sc.regex("^.{2}"), sc.latency(100)):
        assert s.score_many(batch, idx) == [s.score_sync(runs[k], rows[k]) for k in idx]
    assert built == []  # every check read columns only
    rows[2] = DatasetRow("r2", 2, {})  # no expected: contains() raises for this run alone
    got = sc.contains().score_many(batch, idx)
    assert built == idx  # so every run was scored on its own
    assert [g.errored for g in got] == [False, True, False, False]
    assert got[1].reason is not None and got[1].reason.startswith("ScorerError: no expected")


def test_rescore_interrupted_midway_writes_nothing(tmp_path: Path) -> None:
    session = ps.Session(db=str(tmp_path / "i.duckdb"))
    _varied_runs(session)
    seen: list[str] = []

    def stop(run: Any, row: Any) -> bool:
        seen.append(run.run_id)
        if len(seen) == 4:
            raise KeyboardInterrupt  # not an Exception: it ends the re-score
        return True

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(session.score("SELECT run_id FROM runs", [ps.scorers.length(max=5), stop]))
    assert len(seen) == 4
    assert session.runs.sql("SELECT count(*) FROM scores").fetchall() == [(0,)]
    session.close()


def test_arrow_score_batches_read_as_the_same_rows_everywhere() -> None:
    import datetime as dt

    from promptstate.runlog.evalstore import SCORE_COLUMNS, ArrowBatch, columns_of, score_schema
    from promptstate.runlog.postgres.evalstore import _rows

    at = dt.datetime(2024, 1, 2, 3, 4, 5, 678901)
    rows = [
        {
            **dict.fromkeys(SCORE_COLUMNS),
            "score_id": f"s{i}",
            "run_id": "r",
            "scorer": "x",
            "value": [1.0, None, 0.25][i],
            "passed": [True, None, False][i],
            "reason": [None, "ünï ✓", ""][i],
            "source": "auto",
            "errored": i == 1,
            "created_at": at,
        }
        for i in range(3)
    ]
    lists = columns_of(rows, SCORE_COLUMNS)
    arrow = ArrowBatch(lists.arrow(score_schema()))
    assert columns_of(arrow, SCORE_COLUMNS) is arrow  # handed to the writer as is
    assert list(arrow) == rows and arrow[1:] == rows[1:] and len(arrow) == 3
    # the Postgres port reads an Arrow batch as the same parameter rows as row dicts
    assert _rows([arrow], SCORE_COLUMNS) == _rows([rows], SCORE_COLUMNS)
    assert _rows([arrow], SCORE_COLUMNS)[0][-1] == at
