"""The benchmark scripts stay runnable: each imports, and the run-log one's synthetic rows
still cover the run schema (both broke silently once when the code they call moved)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))


@pytest.fixture(autouse=True)
def _on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_benchmark_script_imports(name: str) -> None:
    module = importlib.import_module(name)
    if name.startswith("bench_"):
        assert callable(getattr(module, "main", None)), f"{name} has no main()"


def test_the_synthetic_runs_cover_the_run_schema() -> None:
    pytest.importorskip("pyarrow")
    from promptstate.models.run import RUN_COLUMNS

    bench_runlog = importlib.import_module("bench_runlog")
    table = bench_runlog.synthetic_runs(100)
    assert table.num_rows == 100 and tuple(table.column_names) == RUN_COLUMNS


def test_the_store_benchmark_runs_at_its_smallest() -> None:
    bench_store = importlib.import_module("bench_store")
    figures = bench_store.measure(10, 5)
    assert set(figures) == {"set_variable", "dispatch", "start", "close"}
    assert all(v > 0 for v in figures.values())
