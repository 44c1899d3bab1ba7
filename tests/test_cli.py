"""The ``promptstate`` command line: output, exit codes, errors, and the fixes of its first hour."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from promptstate.cli import main

ROOT = Path(__file__).resolve().parents[1]
HELLO = ROOT / "examples" / "prompts" / "hello.yaml"
COMMANDS = ("demo", "runs", "run", "sweep", "prompts")


def _cli(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a fresh process (for stderr, warnings and exit codes as a shell sees them)."""
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full.pop("PROMPTSTATE_DB", None)
    full.update(env)
    return subprocess.run(
        [sys.executable, "-m", "promptstate.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full,
        timeout=600,
    )


@pytest.fixture
def demo_db(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> str:
    db = str(tmp_path / "demo.duckdb")
    assert main(["demo", "--db", db]) == 0
    capsys.readouterr()
    return db


@pytest.fixture
def no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys unset and every proxy pointed at a closed local port: nothing can leave."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)


def _prompt_file(tmp_path: Path) -> Path:
    f = tmp_path / "hello.yaml"
    f.write_text(
        'id: hello\nmessages: [{role: user, content: "hi {{name}} from {{place}}"}]\n'
        "settings: {echo_delay: 0.001}\n"
    )
    return f


# -- the basics ---------------------------------------------------------------------------------


def test_demo_then_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "summarize" in out and "success" in out
    assert (tmp_path / "promptstate-demo.duckdb").exists()
    sql = "SELECT count(*) AS n FROM runs"
    assert main(["runs", sql, "--db", "promptstate-demo.duckdb", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 5}]
    sql = "SELECT status FROM runs LIMIT 1"
    assert main(["runs", sql, "--db", "promptstate-demo.duckdb", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["status", "success"]


def test_run_prints_the_reply_and_logs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.duckdb")
    f = _prompt_file(tmp_path)
    assert main(["run", str(f), "--var", "name=Ada", "--var", "place=Rome", "--db", db]) == 0
    assert capsys.readouterr().out == "hi Ada from Rome\n"
    args = ["run", str(f), "--var", "name=Bo", "--var", "place=Oslo", "--stream", "--db", db]
    assert main(args) == 0
    assert capsys.readouterr().out == "hi Bo from Oslo\n"
    assert main(["runs", "SELECT count(*) AS n FROM runs", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2}]


def test_a_failed_run_exits_1_with_its_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text('id: bad\nmessages: [{role: user, content: "x"}]\nsettings: {echo_error: boom}\n')
    assert main(["run", str(f), "--db", str(tmp_path / "x.duckdb")]) == 1
    err = capsys.readouterr().err
    assert re.fullmatch(r"error: run [0-9a-f]+ ended error: .*boom.*\n", err), err


def test_sweep_from_csv_and_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTSTATE_DB", str(tmp_path / "env.duckdb"))
    f = _prompt_file(tmp_path)
    (tmp_path / "d.csv").write_text("name,place\nAda,London\nBob,Paris\nCy,Rome\n")
    (tmp_path / "d.jsonl").write_text(
        '{"name": "Di", "place": "Bern"}\n\n{"name": "Ed", "place": "Kyiv"}\n'
    )
    args = ["sweep", str(f), "--vars", str(tmp_path / "d.csv"), "--models", "echo,echo:b"]
    assert main([*args, "--concurrency", "3", "--quiet", "--csv"]) == 0
    captured = capsys.readouterr()
    assert "6 runs, 0 errors" in captured.err
    lines = captured.out.splitlines()
    assert lines[0].startswith("name,place,model,status,latency_ms,response,error")
    assert sum(",echo:b,success," in line for line in lines) == 3
    assert sum(",echo,success," in line for line in lines) == 3
    assert main(["sweep", str(f), "--vars", str(tmp_path / "d.jsonl"), "--quiet"]) == 0
    assert "2 runs, 0 errors" in capsys.readouterr().out
    assert (tmp_path / "env.duckdb").exists()
    assert main(["sweep", str(f), "--vars", str(tmp_path / "missing.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


# -- --help ---------------------------------------------------------------------------------------


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _entries(help_text: str) -> dict[str, str]:
    """``{invocation: description}`` for every argument argparse lists in a help text."""
    entries: dict[str, str] = {}
    current: str | None = None
    for line in help_text.splitlines():
        indent = len(line) - len(line.lstrip())
        if not line.strip() or indent == 0:
            current = None
        elif indent <= 4:  # "  --db FILE   description" or "    demo   description"
            invocation, _, description = line.strip().partition("  ")
            current = invocation
            entries[current] = description.strip()
        elif current is not None:  # a description wrapped onto the next lines
            entries[current] = (entries[current] + " " + line.strip()).strip()
    return entries


def test_help_gives_every_command_and_option_a_description_without_rst(
    capsys: pytest.CaptureFixture[str],
) -> None:
    top = _help(capsys)
    assert "``" not in top and ":class:" not in top
    entries = _entries(top)
    for command in COMMANDS:
        assert entries.get(command), f"{command!r} has no help line in:\n{top}"
    for command in COMMANDS:
        text = _help(capsys, command) if command != "prompts" else _help(capsys, "prompts")
        assert "``" not in text, text
        options = _entries(text)
        flags = set(re.findall(r"\[(--[a-z-]+)", text.split("\n\n")[0]))
        assert flags, text
        for flag in flags:
            described = [d for inv, d in options.items() if re.match(rf"{flag}\b", inv)]
            assert described and described[0], f"{command} {flag} has no description:\n{text}"
        for inv, description in options.items():
            assert description, f"{command}: {inv!r} has no description:\n{text}"


# -- runs -----------------------------------------------------------------------------------------


def test_runs_default_shows_readable_columns_fitted_to_the_terminal(
    demo_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "72")
    assert main(["runs", "--db", demo_db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "started_at",
        "prompt_id",
        "model",
        "status",
        "latency_ms",
        "response",
    ]
    assert all(len(line) <= 72 for line in lines), "\n".join(lines)
    rows = lines[2:-1]
    assert len(rows) == 5 and lines[-1] == "(5 rows)"
    for row in rows:
        assert re.match(
            r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d  summarize  echo\s+success\s+\d+\.\d ", row
        )
    assert any(row.endswith("…") for row in rows), "long replies are truncated"


def test_runs_rounds_durations_in_every_format(
    demo_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sql = "SELECT latency_ms, ttft_ms FROM runs"
    for fmt in ("table", "csv", "json"):
        assert main(["runs", sql, "--db", demo_db, "--format", fmt]) == 0
        out = capsys.readouterr().out
        numbers = re.findall(r"\d+\.\d+", out)
        assert numbers and all(len(n.split(".")[1]) == 1 for n in numbers), (fmt, out)


def test_runs_json_csv_and_limit_for_scripts(
    demo_db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["runs", "--db", demo_db, "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 5 and {r["model"] for r in records} == {"echo"}
    # a long reply is printed whole for scripts (the table truncates it)
    assert any(len(r["response"]) > 60 for r in records)
    assert main(["runs", "--db", demo_db, "--csv", "--limit", "2"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["runs", "SELECT * FROM range(50)", "--db", demo_db]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 + 20 + 1 and "20 of 50 rows" in out[-1]
    assert main(["runs", "SELECT * FROM range(50)", "--db", demo_db, "--limit", "30"]) == 0
    assert "30 of 50 rows" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["runs", "--db", demo_db, "--limit", "0"])
    assert exit_info.value.code == 2


def test_runs_is_read_only_unless_write_is_given(
    demo_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["runs", "DELETE FROM runs", "--db", demo_db]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: only SELECT queries are allowed here, not DELETE")
    assert "--write" in err and err.count("\n") == 1
    for sql in ("DROP TABLE runs", "ATTACH 'other.duckdb'", "COPY runs TO 'x.csv'"):
        assert main(["runs", sql, "--db", demo_db]) == 1
        assert capsys.readouterr().err.startswith("error: ")
    assert main(["runs", "SELECT count(*) AS n FROM runs", "--db", demo_db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 5}]
    assert main(["runs", "DELETE FROM runs WHERE status = 'x'", "--db", demo_db, "--write"]) == 0
    capsys.readouterr()
    assert main(["runs", "DELETE FROM runs", "--db", demo_db, "--write"]) == 0
    capsys.readouterr()
    assert main(["runs", "SELECT count(*) AS n FROM runs", "--db", demo_db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0}]


# -- demo -----------------------------------------------------------------------------------------


def test_a_second_demo_shows_only_its_own_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "demo.duckdb")
    assert main(["demo", "--db", db]) == 0
    capsys.readouterr()
    assert main(["demo", "--db", db]) == 0
    out = capsys.readouterr().out
    assert out.startswith("ran 5 sends")
    table_row = next(line for line in out.splitlines() if line.startswith("summarize"))
    assert table_row.split()[:4] == ["summarize", "echo", "success", "5"], out
    assert "(10 runs, 5 from earlier sessions)" in out


def test_the_demo_hint_runs_as_printed_from_anywhere(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "elsewhere").mkdir()
    # the quick start runs the demo inside build/ and the user reads it from the root
    demo = _cli("demo", "--db", "promptstate-demo.duckdb", cwd=tmp_path / "build")
    assert demo.returncode == 0, demo.stderr
    hint = next(line for line in demo.stdout.splitlines() if line.startswith("try: "))
    argv = shlex.split(hint.removeprefix("try: "))
    assert argv[0] == "promptstate"
    again = _cli(*argv[1:], cwd=tmp_path / "elsewhere")
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("summarize") == 5


# -- sweep ----------------------------------------------------------------------------------------


def test_sweep_prints_each_reply_with_its_variables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    data = tmp_path / "d.csv"
    data.write_text("name,tone\nAda,friendly\nGrace,formal\n")
    db = str(tmp_path / "s.duckdb")
    args = ["sweep", str(HELLO), "--vars", str(data), "--models", "echo,echo:b", "--quiet"]
    assert main([*args, "--db", db]) == 0
    out = capsys.readouterr().out
    rows = [line.split(None, 4) for line in out.splitlines() if line.startswith(("Ada", "Grace"))]
    assert [r[:4] for r in rows] == [
        ["Ada", "friendly", "echo", "success"],
        ["Ada", "friendly", "echo:b", "success"],
        ["Grace", "formal", "echo", "success"],
        ["Grace", "formal", "echo:b", "success"],
    ]
    assert rows[2][4].split(None, 1)[1] == "Say hello to Grace in a formal way."
    assert re.search(r"^echo:b\s+2\s+2\s+0\s+\d+\.\d\s+", out, re.M), out
    assert "4 runs, 0 errors" in out


def test_sweep_shows_why_a_cell_failed_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    f = tmp_path / "p.yaml"
    f.write_text('id: p\nmessages: [{role: user, content: "{{x}}"}]\nvariables: {x: null}\n')
    data = tmp_path / "d.jsonl"
    data.write_text('{"x": "fine"}\n{"y": "no x here"}\n')
    assert (
        main(["sweep", str(f), "--vars", str(data), "--quiet", "--db", str(tmp_path / "s.db")]) == 1
    )
    out = capsys.readouterr().out
    assert re.search(r"^fine\s+echo\s+success", out, re.M), out
    assert re.search(r"error\s+.*missing value for variable", out), out
    assert "2 runs, 1 errors" in out


class _BarrierServer:
    """Hold every chat request until ``n`` are in flight at once (or 50 s pass)."""

    def __init__(self, n: int) -> None:
        from tests.fake_llm import FakeLLMServer

        self.n = n
        self.in_flight = 0
        self.peak = 0
        self._release: asyncio.Event | None = None
        self.server = FakeLLMServer()
        inner = self.server._app

        async def app(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http" or scope["path"] != "/v1/chat/completions":
                await inner(scope, receive, send)
                return
            if self._release is None:
                self._release = asyncio.Event()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                if self.in_flight >= self.n:
                    self._release.set()
                # under the provider's read timeout (60 s), so a capped client never retries
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._release.wait(), 50)
                await inner(scope, receive, send)
            finally:
                self.in_flight -= 1

        self.server._app = app  # type: ignore[method-assign]

    def __enter__(self) -> _BarrierServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def test_sweep_concurrency_flag_is_honoured_above_the_provider_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 24  # more than the HTTP providers' default cap of 16
    f = tmp_path / "p.yaml"
    f.write_text('id: p\nmessages: [{role: user, content: "row {{i}}"}]\n')
    data = tmp_path / "d.csv"
    data.write_text("i\n" + "".join(f"{i}\n" for i in range(n)))
    with _BarrierServer(n) as barrier:
        monkeypatch.setenv("OPENAI_BASE_URL", barrier.server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cli")
        args = ["sweep", str(f), "--vars", str(data), "--models", "openai:fake-model"]
        code = main([*args, "--concurrency", str(n), "--quiet", "--db", str(tmp_path / "c.db")])
    out = capsys.readouterr().out
    assert barrier.peak == n, f"only {barrier.peak} requests were in flight at once"
    assert code == 0, out
    assert f"{n} runs, 0 errors" in out and "openai:fake-model" in out


# -- prompts list ---------------------------------------------------------------------------------


def test_prompts_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(
        "id: hello\nmessages: [{role: user, content: 'hi {{name}}'}]\n"
    )
    assert main(["prompts", "list", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^hello\s+[0-9a-f]{12}\s+echo\s+name\s+file", out, re.M), out


def test_prompts_list_and_runs_agree_when_there_is_no_db(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["runs"]) == main(["prompts", "list"]) == 2
    errs = capsys.readouterr().err.splitlines()
    assert len(errs) == 2 and all("no run log at 'promptstate.duckdb'" in e for e in errs)
    assert all(e.startswith("error: ") and "--db" in e for e in errs)
    assert "--dir" in errs[1]
    assert not (tmp_path / "promptstate.duckdb").exists(), "listing must not create a log"
    empty = tmp_path / "empty.duckdb"
    assert main(["runs", "SELECT 1 AS x", "--db", str(empty)]) == 2
    capsys.readouterr()
    # a log that exists but holds no prompts says so, and how to add some
    assert main(["demo", "--db", str(empty)]) == 0
    assert main(["runs", "DELETE FROM prompts", "--db", str(empty), "--write"]) == 0
    capsys.readouterr()
    assert main(["prompts", "list", "--db", str(empty)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no prompts in the run log") and "--dir" in out


# -- errors, warnings, suggestions ----------------------------------------------------------------


def test_warnings_print_one_line(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("name,note\nAda,first\nBo,second\n")
    proc = _cli("sweep", str(HELLO), "--vars", str(data), "--quiet", "--db", str(tmp_path / "w.db"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (f"warning: column 'note' of {data} is not used by prompt 'hello'\n")


def test_a_mistyped_variable_gets_a_suggestion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "v.duckdb")
    assert main(["run", str(HELLO), "--var", "nmae=Ada", "--db", db]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: prompt 'hello' has no variable 'nmae' (--var nmae=...); did you mean 'name'?\n"
    )
    assert main(["run", str(HELLO), "--var", "name=Ada", "--var", "zzz=1", "--db", db]) == 2
    assert "its variables: name, tone" in capsys.readouterr().err
    data = tmp_path / "d.csv"
    data.write_text("nmae\nAda\n")
    assert main(["sweep", str(HELLO), "--vars", str(data), "--quiet", "--db", db]) == 2
    assert "did you mean 'name'?" in capsys.readouterr().err
    # nothing ran: a usage error is caught before anything is sent or logged
    assert main(["runs", "SELECT count(*) AS n FROM runs", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0}]


def test_a_missing_variable_says_which_flag_to_pass(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", str(HELLO), "--db", str(tmp_path / "m.duckdb")]) == 2
    assert capsys.readouterr().err == (
        "error: prompt 'hello' needs a value for name: pass --var name=...\n"
    )


@pytest.mark.parametrize(
    ("model", "suggestion"),
    [
        ("gpt-4o", "did you mean 'openai:gpt-4o'?"),
        ("claude-sonnet-4-5", "did you mean 'anthropic:claude-sonnet-4-5'?"),
        ("opnai:gpt-4o", "did you mean 'openai:gpt-4o'?"),
        ("llama3", "model strings are '<provider>:<model>'"),
    ],
)
def test_an_unknown_provider_gets_a_suggestion(
    model: str, suggestion: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["run", str(HELLO), "--var", "name=Ada", "--model", model]
    assert main([*args, "--db", str(tmp_path / "p.duckdb")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown provider ") and suggestion in err, err


@pytest.mark.usefixtures("no_internet")
@pytest.mark.parametrize(
    ("model", "var"), [("openai:gpt-4o-mini", "OPENAI"), ("anthropic:claude-x", "ANTHROPIC")]
)
def test_a_missing_api_key_fails_at_once(
    model: str, var: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "k.duckdb")
    assert main(["run", str(HELLO), "--var", "name=Ada", "--model", model, "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {var}_API_KEY is not set"), err
    args = ["sweep", str(HELLO), "--vars", str(ROOT / "examples" / "data.csv")]
    assert main([*args, "--models", f"echo,{model}", "--quiet", "--db", db]) == 2
    assert f"{var}_API_KEY is not set" in capsys.readouterr().err
    # nothing was attempted, so nothing was logged
    assert main(["runs", "SELECT count(*) AS n FROM runs", "--db", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 0}]


def test_exit_codes_and_one_line_errors(tmp_path: Path, demo_db: str) -> None:
    f = _prompt_file(tmp_path)
    cases = [
        (["runs", "SELECT * FROM nowhere", "--db", demo_db], 1, "error: query failed"),
        (["runs", "DELETE FROM runs", "--db", demo_db], 1, "error: only SELECT"),
        (["run", str(f), "--var", "novalue", "--db", demo_db], 2, "error: --var expects"),
        (["run", str(tmp_path / "nope.yaml"), "--db", demo_db], 2, "error: "),
        (["sweep", str(f), "--concurrency", "0"], 2, "--concurrency: must be at least 1"),
        (["runs", "--no-such-flag"], 2, "unrecognized arguments"),
        (["frobnicate"], 2, "invalid choice"),
    ]
    for args, code, message in cases:
        proc = _cli(*args, cwd=tmp_path)
        assert proc.returncode == code, (args, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        if message.startswith("error: "):
            assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, (
                args,
                proc.stderr,
            )


def test_no_run_log_is_one_line(tmp_path: Path) -> None:
    proc = _cli("runs", "SELECT 1", "--db", str(tmp_path / "none.duckdb"))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no run log" in proc.stderr


def test_output_into_a_closed_pipe_stops_quietly(demo_db: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PROMPTSTATE_DB"}
    cmd = f"{shlex.quote(sys.executable)} -m promptstate.cli runs 'SELECT * FROM range(200000)' "
    cmd += f"--db {shlex.quote(demo_db)} --csv | head -1"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=600)
    assert proc.stdout == "range\n"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr
