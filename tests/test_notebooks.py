"""Execute every notebook in notebooks/ headlessly; any error in any cell fails."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def test_the_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert {"quickstart.ipynb", "multiple_instances.ipynb", "scoped_variables.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel inherits this: it imports promptstate from the checkout even when the
    # package is not installed.
    src = str(REPO / "src")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))
    )
    nb = nbformat.read(path, as_version=4)
    # Stored outputs would go stale; the notebooks ship clean.
    assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name
    client = nbclient.NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        # A temp cwd: the DuckDB files the notebooks create do not litter the checkout.
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    assert list(tmp_path.glob("*.duckdb")), "the notebook should log its runs to a DuckDB file"
