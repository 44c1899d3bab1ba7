"""Execute every notebook in notebooks/ headlessly, the way a user runs it again and again.

Each notebook is copied into its own temp dir and executed three times there, on the same
DuckDB files:

1. the shipped file;
2. the shipped file again (Restart & Run All on a run log that already holds runs);
3. the executed notebook of step 2 written back to disk, i.e. what a user's save in
   JupyterLab leaves behind (outputs, execution counts, timing and widget-state metadata).

Any error in any cell (the notebooks end with their own checks) fails. Execution stores
the widget state, as JupyterLab's "Save Widget State" does, so an executed notebook shows
its widgets when reopened or rendered.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
# ``ps.Session(db="file.duckdb", ...)`` and ``ps.Session(db='file.duckdb')``.
_DB_ARG = re.compile(r"""\bdb\s*=\s*(["'])([^"']+\.duckdb)\1""")


def _code(nb: Any) -> list[Any]:
    return [c for c in nb.cells if c.cell_type == "code"]


def _db_files(nb: Any) -> set[str]:
    return {m.group(2) for c in _code(nb) for m in _DB_ARG.finditer(c.source)}


def _widget_views(nb: Any) -> list[str]:
    """Model ids of every widget the notebook's outputs display."""
    return [
        out["data"][WIDGET_VIEW]["model_id"]
        for c in _code(nb)
        for out in c.outputs
        if out.output_type in ("display_data", "execute_result")
        and WIDGET_VIEW in out.get("data", {})
    ]


def _saved_widget_state(nb: Any) -> dict[str, Any]:
    return dict(nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {}))


def _execute(path: Path) -> Any:
    """Run ``path`` top to bottom in a fresh kernel (cwd = its folder); return the result."""
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,  # per cell; generous for a loaded machine, never reached when healthy
        # No kernel_name: the notebook's own kernelspec metadata picks the kernel, as in Lab.
        store_widget_state=True,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    return nb


def _assert_widgets_saved(nb: Any, name: str) -> dict[str, Any]:
    state = _saved_widget_state(nb)
    views = _widget_views(nb)
    assert views, f"{name}: no widget was displayed"
    assert state, f"{name}: the executed notebook has no {WIDGET_STATE} metadata"
    missing = [m for m in views if m not in state]
    assert not missing, f"{name}: displayed widgets without saved state: {missing}"
    # anywidget views are rebuilt from the saved module text alone (no kernel needed).
    anywidgets = [
        m
        for m in views
        if state[m]["model_module"] == "anywidget" and state[m]["state"].get("_esm")
    ]
    assert anywidgets, f"{name}: no anywidget with its module among the saved widgets"
    return state


@pytest.fixture
def kernel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this: it imports promptstate from the checkout even when the
    # package is not installed.
    src = str(REPO / "src")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    )


def test_the_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {
        "quickstart.ipynb",
        "multiple_instances.ipynb",
        "scoped_variables.ipynb",
        "history_and_devtools.ipynb",
    } <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_declares_the_python3_kernel(path: Path) -> None:
    spec = nbformat.read(path, as_version=4).metadata.get("kernelspec", {})
    assert spec.get("name") == "python3", spec
    assert spec.get("language") == "python", spec
    assert spec.get("display_name"), spec


def test_each_notebook_logs_to_its_own_db_file() -> None:
    # Two notebooks sharing a file would see each other's runs (and scoped variables).
    owner: dict[str, str] = {}
    for path in NOTEBOOKS:
        files = _db_files(nbformat.read(path, as_version=4))
        assert files, f"{path.name} opens no DuckDB file"
        for f in files:
            assert f not in owner, f"{path.name} and {owner[f]} both use {f}"
            owner[f] = path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_again_and_after_a_save(path: Path, tmp_path: Path, kernel_env: None) -> None:
    work = tmp_path / path.name  # a temp cwd: the DuckDB files do not litter the checkout
    shutil.copyfile(path, work)
    db_files = _db_files(nbformat.read(path, as_version=4))

    first = _execute(work)
    _assert_widgets_saved(first, "first run")
    for f in db_files:
        assert (tmp_path / f).is_file(), f"the notebook should log its runs to {f}"

    # Restart & Run All: same folder, so the run log already holds the first run's rows.
    second = _execute(work)
    second_state = _assert_widgets_saved(second, "second run")

    # A user's save: the executed notebook, outputs and widget state included, goes back
    # to disk and is run again from there.
    nbformat.write(second, work)
    saved = nbformat.read(work, as_version=4)
    assert any(c.outputs for c in _code(saved)) and _saved_widget_state(saved)
    third = _execute(work)
    third_state = _assert_widgets_saved(third, "run after a save")
    # The saved state describes this run's widgets, not the previous run's leftovers.
    assert not set(third_state) & set(second_state)
