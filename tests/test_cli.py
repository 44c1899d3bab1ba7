from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from promptstate.cli import main


def test_demo_then_query(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "summarize" in out and "success" in out
    assert (tmp_path / "promptstate-demo.duckdb").exists()
    assert (
        main(
            [
                "runs",
                "SELECT count(*) AS n FROM runs",
                "--db",
                "promptstate-demo.duckdb",
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"n": 5}]
    assert (
        main(
            [
                "runs",
                "SELECT status FROM runs LIMIT 1",
                "--db",
                "promptstate-demo.duckdb",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["status", "success"]


def test_errors_exit_non_zero_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "promptstate.cli",
            "runs",
            "SELECT 1",
            "--db",
            str(tmp_path / "none.duckdb"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no run log" in proc.stderr


def test_prompts_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p.yaml").write_text(
        "id: hello\nmessages: [{role: user, content: 'hi {{name}}'}]\n"
    )
    assert (
        main(["prompts", "list", "--dir", str(tmp_path), "--db", str(tmp_path / "x.duckdb")]) == 0
    )
    out = capsys.readouterr().out
    assert "hello" in out and "name" in out


def _prompt_file(tmp_path: Path) -> Path:
    f = tmp_path / "hello.yaml"
    f.write_text(
        'id: hello\nmessages: [{role: user, content: "hi {{name}} from {{place}}"}]\n'
        "settings: {echo_delay: 0.001}\n"
    )
    return f


def test_run_prints_the_reply_and_logs_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.duckdb")
    f = _prompt_file(tmp_path)
    assert main(["run", str(f), "--var", "name=Ada", "--var", "place=Rome", "--db", db]) == 0
    assert capsys.readouterr().out == "hi Ada from Rome\n"
    assert (
        main(["run", str(f), "--var", "name=Bo", "--var", "place=Oslo", "--stream", "--db", db])
        == 0
    )
    assert capsys.readouterr().out == "hi Bo from Oslo\n"
    assert main(["runs", "SELECT count(*) AS n FROM runs", "--db", db, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 2}]
    assert main(["run", str(f), "--var", "name=x", "--db", db]) == 1
    assert "place" in capsys.readouterr().err
    assert main(["run", str(f), "--var", "novalue", "--db", db]) == 1


def test_sweep_from_csv_and_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTSTATE_DB", str(tmp_path / "env.duckdb"))
    f = _prompt_file(tmp_path)
    (tmp_path / "d.csv").write_text("name,place\nAda,London\nBob,Paris\nCy,Rome\n")
    (tmp_path / "d.jsonl").write_text(
        '{"name": "Di", "place": "Bern"}\n\n{"name": "Ed", "place": "Kyiv"}\n'
    )
    assert (
        main(
            [
                "sweep",
                str(f),
                "--vars",
                str(tmp_path / "d.csv"),
                "--models",
                "echo,echo:b",
                "--concurrency",
                "3",
                "--quiet",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "6 runs, 0 errors" in out and "echo:b,success,3" in out
    assert main(["sweep", str(f), "--vars", str(tmp_path / "d.jsonl"), "--quiet"]) == 0
    assert "2 runs" in capsys.readouterr().out
    assert (tmp_path / "env.duckdb").exists()
    assert main(["sweep", str(f), "--vars", str(tmp_path / "missing.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err
