"""End to end: the PromptRunner in Notebook 7 (``jupyter notebook``), in headless Chromium.

Notebook 7 is built from JupyterLab's components but has its own shell (no status bar,
one notebook per tab), so the harness's :class:`LabNotebook` drives it with
``ui="notebook"``. Offline on the echo provider.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import (
    LabNotebook,
    LabServer,
    start_jupyter,
    type_into,
    variable_row_misalignments,
)

pytestmark = pytest.mark.browser

# Defaults first (reset buttons hidden), then an instance value (reset shown): the same
# form as the marimo test, where that order shows whether the rows hold together.
SETUP = """\
import promptstate as ps

session = ps.Session(db="nb7_runs.duckdb")
session.prompts.register(ps.Prompt(
    id="greet",
    messages=[ps.system("Be {{tone}}."), ps.user("{{greeting}} {{name}}, about {{topic}}")],
    variables={"greeting": "Hello", "name": "Ann", "tone": "brief", "topic": ""},
    model="echo",
))
inst = session.start("greet", variables={"topic": "the weather"})
ps.widgets.PromptRunner(inst)
"""
VARIABLES = ["greeting", "name", "tone", "topic"]


@pytest.fixture(scope="module")
def notebook7_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    pytest.importorskip("notebook")
    with start_jupyter(tmp_path_factory.mktemp("nb7"), ui="notebook") as server:
        yield server


def test_send_in_notebook7_logs_the_run(notebook7_server: LabServer, page: Any) -> None:
    nb = LabNotebook(notebook7_server, page, "nb7_send.ipynb", [SETUP]).open()
    runner = nb.run_cell(0).locator(".promptstate-widget")
    topic = runner.locator("[data-variable=topic]")
    topic.wait_for(timeout=60_000)
    assert topic.input_value() == "the weather"
    # The same layout check that fails in marimo holds here.
    assert variable_row_misalignments(runner, VARIABLES) == []

    type_into(topic, "the launch plan")
    runner.locator("[data-action=send]").click()
    expected = "Hello Ann, about the launch plan"
    runner.locator('[data-role="assistant"] .ps-content').filter(has_text=expected).wait_for(
        timeout=60_000
    )
    runner.locator(".ps-status[data-status=success]").wait_for(timeout=60_000)
    assert runner.locator("[data-row=topic] .ps-badge").inner_text() == "instance"

    # The DuckDB file itself, read once the kernel has let go of it.
    notebook7_server.shutdown_kernel(nb.name)
    import duckdb

    con = duckdb.connect(str(notebook7_server.root_dir / "nb7_runs.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "SELECT status, response, json_extract_string(variables, '$.topic.value'), "
            "json_extract_string(variables, '$.topic.source') FROM runs"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("success", expected, "the launch plan", "instance")]
