"""Several processes on one run log, crash recovery mid-sweep, fuzzed bad input."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import promptstate as ps
from promptstate.devtools.recorder import parse_export

WRITER = textwrap.dedent("""
    import asyncio, sys, time
    import promptstate as ps
    db, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    s = ps.Session(db=db)
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
    async def main():
        insts = [s.start("p", variables={"x": f"{tag}-{i}"}) for i in range(n)]
        sem = asyncio.Semaphore(25)
        async def one(inst):
            async with sem:
                return await inst.send()
        results = await asyncio.gather(*(one(i) for i in insts))
        bad = [r for r in results if r.status != "success"]
        assert not bad, bad[:3]
    t0 = time.perf_counter()
    asyncio.run(main())
    s.close()
    print(f"ok {tag} {time.perf_counter() - t0:.2f}s waits={s.runlog.lock_waits} "
          f"wait_s={s.runlog.lock_wait_seconds:.2f} opens={s.runlog.opens}", flush=True)
""")


def test_four_processes_share_one_run_log(tmp_path: Path) -> None:
    db = tmp_path / "shared.duckdb"
    ps.Session(db=str(db)).close()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), f"proc{k}", "500"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(4)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert out.startswith("ok ")
    print("\n".join(o for o, _ in outs))
    with ps.Session(db=str(db)) as s:
        rows = s.runs.sql(
            "SELECT count(*), count(DISTINCT run_id), count(DISTINCT response), "
            "count(*) FILTER (WHERE status = 'success') FROM runs"
        ).fetchall()
        assert rows == [(2000, 2000, 2000, 2000)]


def test_reader_while_another_process_writes(tmp_path: Path) -> None:
    db = tmp_path / "rw.duckdb"
    ps.Session(db=str(db)).close()
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db), "w", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counts = []
    with ps.Session(db=str(db)) as reader:
        while writer.poll() is None:
            counts.append(reader.runs.count())
            time.sleep(0.05)
    _out, err = writer.communicate()
    assert writer.returncode == 0, err[-2000:]
    assert counts == sorted(counts)  # monotonic: readers see committed runs only


KILLED_SWEEP = textwrap.dedent("""
    import asyncio, sys
    import promptstate as ps
    s = ps.Session(db=sys.argv[1])
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")],
                                 settings={"echo_delay": 0.05}))
    async def main():
        texts = [f"w{i} " + "a " * (3 + i % 23) for i in range(1000)]  # staggered lengths
        sw = s.sweep("p", {"x": texts}, concurrency=40, progress=False)
        def done(cell):
            # a cell reported done here has its terminal row committed
            print("done", cell.result.run_id, flush=True)
        sw.subscribe(done)
        await sw
    asyncio.run(main())
""")


def test_sigkill_mid_sweep_loses_no_reported_run(tmp_path: Path) -> None:
    db = tmp_path / "crash.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SWEEP, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    reported: list[str] = []
    for line in proc.stdout:
        reported.append(line.split()[1])
        if len(reported) >= 60:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ps.Session(db=str(db)) as s:
        rows = dict(s.runs.sql("SELECT run_id, status FROM runs").fetchall())
        assert s.runlog.recovered > 0
    missing = [r for r in reported if rows.get(r) != "success"]
    assert not missing, f"{len(missing)} reported runs lost"
    assert "running" not in rows.values()
    assert set(rows.values()) <= {"success", "interrupted"}


# -- fuzzed bad input ----------------------------------------------------------------------


@given(st.text(max_size=300))
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_prompt_files_of_arbitrary_text_give_typed_errors(tmp_path: Path, text: str) -> None:
    f = tmp_path / "fuzz.yaml"
    f.write_text(text, encoding="utf-8")
    s = ps.Session()
    before = s.store.get_state()
    try:
        s.prompts.load(f)
    except ps.PromptStateError:
        assert s.store.get_state() is before
    s.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(
            ["id", "messages", "variables", "model", "settings", "version", "description", "extra"]
        ),
        json_values,
        max_size=7,
    )
)
@settings(max_examples=300)
def test_prompt_dicts_with_wrong_types_give_typed_errors(data: dict[str, object]) -> None:
    from promptstate.models.prompt import prompt_from_dict

    try:
        p = prompt_from_dict(data)
    except ps.PromptStateError:
        return
    assert isinstance(p, ps.Prompt)


def _export() -> str:
    s = ps.Session()
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
    inst = s.start("p", variables={"x": "1"})
    asyncio.run(inst.send())
    text = s.devtools.export()
    s.close()
    return text


EXPORT = _export()


@given(
    st.integers(min_value=0, max_value=len(EXPORT) - 1),
    st.integers(min_value=0, max_value=len(EXPORT)),
)
@settings(max_examples=200)
def test_truncated_or_spliced_exports_are_rejected(cut: int, splice: int) -> None:
    bad = EXPORT[:cut] + EXPORT[splice:]
    if bad == EXPORT:
        return
    with pytest.raises(ps.StateImportError):
        parse_export(bad)


@given(json_values)
@settings(max_examples=200)
def test_injected_state_is_rejected(junk: object) -> None:
    from promptstate.devtools.export import _checksum

    data = json.loads(EXPORT)
    data["base_state"]["instances"] = {"x": junk}
    data["checksum"] = _checksum(data)
    with pytest.raises(ps.StateImportError):
        parse_export(json.dumps(data))


@given(st.text(min_size=1, max_size=30), st.text(max_size=200))
@settings(max_examples=300)
def test_variable_names_and_values(name: str, value: str) -> None:
    s = ps.Session()
    s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
    inst = s.start("p")
    before = s.store.get_state()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ps.UnusedVariableWarning)  # names the prompt lacks
            inst.set_variables({name: value})
    except ps.VariableError:
        assert s.store.get_state() is before
    else:
        assert name.isidentifier() and name.isascii()
        assert inst.variables[name] == (value, "instance")
    s.close()


def test_huge_value_round_trips_through_the_log(tmp_path: Path) -> None:
    big = "x" * 10_000_000
    with ps.Session(db=str(tmp_path / "big.duckdb")) as s:
        s.prompts.register(ps.Prompt(id="p", messages=[ps.user("{{x}}")]))
        run = asyncio.run(s.start("p", variables={"x": big}).send())
        assert run.status == "success" and len(run.response) == len(big)
        assert s.runs.sql("SELECT length(response) FROM runs").fetchall() == [(len(big),)]
