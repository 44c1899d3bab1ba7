"""The hardening issue: read-only SQL enforced by DuckDB, bounded queries, no injection,
foreign files left alone, no wedged instance, typed errors for bad input."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import duckdb
import pytest

import promptstate as ps


def _session(tmp_path: Path, name: str = "h.duckdb") -> ps.Session:
    s = ps.Session(db=str(tmp_path / name))
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("say {{x}}")], variables={"x": "hi"}))
    return s


def _files(tmp_path: Path) -> dict[str, Path]:
    d = tmp_path / "secret"
    d.mkdir()
    (d / "data.csv").write_text("k,v\nsecret,42\n")
    (d / "data.jsonl").write_text('{"k": "secret"}\n')
    other = d / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t AS SELECT 'secret' AS k")
    con.close()
    duckdb.connect(":memory:").execute(
        f"COPY (SELECT 'secret' AS k) TO '{d / 'data.parquet'}' (FORMAT parquet)"
    )
    return {"dir": d, "other": other}


def test_read_only_path_cannot_read_any_file(tmp_path: Path) -> None:
    s = _session(tmp_path)
    f = _files(tmp_path)
    d = f["dir"]
    queries = [
        f"SELECT * FROM '{d}/data.csv'",
        f'SELECT * FROM "{d}/data".csv',  # schema-qualified name rejoined into a path
        f'SELECT * FROM "{d}/data".parquet',
        f'SELECT * FROM "{d}/data".jsonl',
        f"SELECT * FROM '{d}/*.csv'",
        f"SELECT * FROM read_csv('{d}/data.csv')",
        f"SELECT * FROM read_text('{d}/data.csv')",
        f"ATTACH '{f['other']}' AS o",
        f"SELECT * FROM '{f['other']}'",
        "SELECT * FROM 'https://127.0.0.1:9/x.parquet'",  # would try an extension download
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        f"COPY runs TO '{d}/out.csv'",
        "DELETE FROM runs",
        "DROP TABLE runs",
        "CREATE TABLE x AS SELECT 1",
    ]
    for q in queries:
        with pytest.raises(ps.ReadOnlyQueryError):
            s.runs.sql(q, read_only=True)
    assert not (d / "out.csv").exists()
    # DuckDB itself refuses: even the read-write path cannot read files
    with pytest.raises(ps.RunLogError):
        s.runs.sql(f"SELECT * FROM '{d}/data.csv'").fetchall()
    assert s.runs.sql("SELECT count(*) FROM runs", read_only=True).fetchall() == [(0,)]
    s.close()


def test_a_slow_read_only_query_is_interrupted_and_never_blocks_logging(tmp_path: Path) -> None:
    s = _session(tmp_path)
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            s.runs.sql("SELECT count(*) FROM range(1000000000000)", read_only=True, timeout=1.0)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.2)
    # a send while the query runs completes and is logged: the query holds no lock
    run = asyncio.run(s.start("p").send())
    assert run.status == "success"
    s.runs.flush()
    t.join(timeout=120)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], ps.ReadOnlyQueryError)
    assert "interrupted" in str(errors[0])
    assert s.runs.get(run.run_id).status == "success"
    s.close()


def test_sweep_relation_is_safe_from_hostile_variable_names(tmp_path: Path) -> None:
    s = _session(tmp_path)
    s.prompts.register(ps.Prompt(id="q", messages=[ps.user("{{x}}")]))
    bad = "x' || (SELECT 1) || '"
    with pytest.raises(ps.VariableError):
        s.sweep("q", [{bad: "1"}], progress=False)
    with pytest.raises(ps.VariableError):
        s.sweep("q", {'a"; DROP TABLE runs; --': ["1"]}, progress=False)

    async def go() -> None:
        sw = await s.sweep("q", [{"x": 'it\'s "quoted"'}], progress=False)
        rows = sw.relation().fetchall()
        assert rows[0][1] == 'it\'s "quoted"'

    asyncio.run(go())
    assert s.runs.count() == 1
    s.close()


def test_a_foreign_duckdb_file_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "theirs.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE runs (id INTEGER, note TEXT)")
    con.execute("INSERT INTO runs VALUES (1, 'mine')")
    con.close()
    with pytest.raises(ps.RunLogError, match="did not create"):
        ps.Session(db=str(path))
    con = duckdb.connect(str(path))
    tables = sorted(r[0] for r in con.execute("SHOW TABLES").fetchall())
    assert tables == ["runs"]
    assert con.execute("SELECT * FROM runs").fetchall() == [(1, "mine")]
    con.close()


@pytest.mark.parametrize(
    "call",
    [
        lambda i: i.send(content=5),  # type: ignore[arg-type]
        lambda i: i.send(settings={"x": object()}),
        lambda i: i.send(settings={"temperature": float("nan")}),
        lambda i: i.send(model=""),
        lambda i: i.send(variables={"x": "\ud800"}),
        lambda i: i.send(variables={"not a name": "1"}),
    ],
)
def test_bad_send_input_raises_typed_and_changes_nothing(tmp_path: Path, call) -> None:  # type: ignore[no-untyped-def]
    s = _session(tmp_path)
    inst = s.start("p")
    before = s.store.get_state()
    with pytest.raises(ps.PromptStateError):
        coro = call(inst)
        coro.close()  # pragma: no cover - only reached if no error was raised
    assert s.store.get_state() is before
    assert inst.status == "idle"
    # the instance is not wedged: a good send still works
    assert asyncio.run(inst.send()).status == "success"
    assert s.runs.count() == 1
    s.close()


def test_other_bad_input_is_typed(tmp_path: Path) -> None:
    with pytest.raises(ps.PromptStateError):
        ps.Session(prices={"echo:echo": ("a", 1)})  # type: ignore[dict-item]
    with pytest.raises(ps.PromptStateError):
        ps.Session(prices={"x": (float("nan"), 1.0)})
    s = _session(tmp_path)
    with pytest.raises(ps.PromptStateError):
        s.start("p", variables=[1])  # type: ignore[arg-type]
    with pytest.raises(ps.PromptStateError):
        s.sweep("p", [{"x": "1"}], concurrency=0, progress=False)
    with pytest.raises(ps.PromptStateError):
        s.prompts.register("x")  # type: ignore[arg-type]
    with pytest.raises(ps.PromptStateError):
        s.start("p", variables={"x": "\udfff"})
    assert s.store.get_state().instance_ids == ()
    s.close()


def test_hostile_prompt_files_fail_fast_and_name_the_file(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 40):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    bomb.write_text("\n".join(lines) + "\nid: p\nmessages: []\n")
    deep = tmp_path / "deep.json"
    deep.write_text('{"id": "p", "messages": ' + "[" * 5000 + "]" * 5000 + "}")
    dated = tmp_path / "dated.yaml"
    dated.write_text(
        "id: p\nmessages: [{role: user, content: '{{d}}'}]\nvariables: {d: 2024-01-01}\n"
    )
    s = ps.Session()
    for f in (bomb, deep, dated):
        t0 = time.monotonic()
        with pytest.raises(ps.PromptFileError) as info:
            s.prompts.load(f)
        assert f.name in str(info.value)
        assert time.monotonic() - t0 < 60  # not a timing check: just that it ends
    s.close()


def test_an_import_taken_mid_run_never_wedges_an_instance(tmp_path: Path) -> None:
    s = _session(tmp_path)

    async def snapshot() -> str:
        inst = s.start("p")
        coro = inst.send(settings={"echo_delay": 0.5})
        task = asyncio.ensure_future(coro)
        while inst.status not in ("running", "queued"):
            await asyncio.sleep(0.01)
        text = s.devtools.export()
        await task
        return text

    text = asyncio.run(snapshot())
    data = json.loads(text)
    assert any(a["type"] == "runs/execute_pending" for a in data["actions"])
    s2 = ps.Session.from_export(text, db=str(tmp_path / "other.duckdb"))
    for inst in s2.instances:
        assert inst.status not in ("running", "queued"), inst
        assert asyncio.run(inst.send()).status == "success"
    s2.close()
    s.close()


def test_skipping_a_run_lifecycle_action_is_refused(tmp_path: Path) -> None:
    s = _session(tmp_path)
    inst = s.start("p")
    asyncio.run(inst.send())
    end = next(r.index for r in s.devtools.actions if r.type == "runs/execute_fulfilled")
    with pytest.raises(ps.PromptStateError):
        s.devtools.skip(end)
    assert inst.status == "success"
    assert asyncio.run(inst.send()).status == "success"
    s.close()


def test_failed_runs_keep_their_typed_error(tmp_path: Path) -> None:
    s = _session(tmp_path)
    s.prompts.register(ps.Prompt(id="f", messages=[ps.user("x")], settings={"echo_error": "boom"}))
    run = asyncio.run(s.start("f").send())
    assert run.status == "error" and run.error_type == "ProviderError"
    with pytest.raises(ps.ProviderError):
        run.raise_for_status()
    back = s.runs.get(run.run_id)
    assert back.error_type == "ProviderError" and "boom" in (back.error or "")
    with pytest.raises(ps.ProviderError, match="boom"):
        back.raise_for_status()
    s.close()
