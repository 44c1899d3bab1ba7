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
