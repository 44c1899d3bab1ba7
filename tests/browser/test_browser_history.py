"""End to end: DevTools, RunHistory and SweepGrid in JupyterLab, driven by headless Chromium.

One notebook, one kernel: type into a PromptRunner, time-travel from DevTools (a row's
jump button and the slider) and watch the runner's input show the old value; query the
run log in RunHistory, have a write refused, open a run and Re-run it until the new row
appears; watch a sweep fill its grid. Screenshots of the three panels go to docs/.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "docs" / "screenshots"
ARTIFACTS = Path(os.environ.get("PROMPTSTATE_BROWSER_ARTIFACTS", "/tmp/promptstate-browser"))

CELLS = [
    """\
import promptstate as ps

session = ps.Session(db="e2e_history.duckdb")
session.prompts.register(ps.Prompt(
    id="summarize",
    messages=[ps.system("You are terse."), ps.user("Summarize for {{user_name}}: {{text}}")],
    variables={"text": "", "user_name": "Ann"},
    model="echo",
    settings={"echo_delay": 0.01},
))
inst = session.start("summarize", variables={"text": "draft zero"})
inst""",
    "devtools = ps.widgets.DevTools(session)\ndevtools",
    """\
sweep = session.sweep(
    "summarize",
    {"text": ["tea with lemon", "black coffee, no sugar", "sparkling water"],
     "user_name": ["Ann", "Bob"]},
    models=["echo", "echo:other"],
    concurrency=3,
    progress=False,
)
ps.widgets.SweepGrid(sweep)""",
    "history = ps.widgets.RunHistory(session, page_size=25)\nhistory",
]

QUERY = (
    "SELECT run_id, model, status, latency_ms, output_tokens, started_at\n"
    "FROM runs ORDER BY started_at DESC"
)


def _publish(shot: Path, name: str) -> None:
    # docs/ keeps a stable picture: refresh it only on request, or when it is missing.
    target = SHOTS / name
    if os.environ.get("PROMPTSTATE_UPDATE_SCREENSHOTS") or not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def _screenshot(locator: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / name
    locator.screenshot(path=str(shot))
    _publish(shot, name)


def _screenshot_dark(page: Any, locator: Any, name: str) -> None:
    """The same panel in JupyterLab's dark theme (theme variables, no fixed colours)."""
    _set_theme(page, "JupyterLab Dark")
    try:
        page.wait_for_timeout(300)  # let the theme's CSS variables apply
        _screenshot(locator, name)
    finally:
        _set_theme(page, "JupyterLab Light")


def _set_theme(page: Any, name: str) -> None:
    page.get_by_role("menuitem", name="Settings").click()
    page.get_by_text("Theme", exact=True).click()
    page.get_by_text(name, exact=True).click()
    page.locator(f"body[data-jp-theme-name='{name}']").wait_for(state="attached")


def _type(locator: Any, text: str) -> None:
    """Replace the input's text with real key presses."""
    locator.click()
    locator.press("Control+a")
    locator.press("Delete")
    locator.press_sequentially(text, delay=5)


def test_time_travel_query_and_rerun(open_notebook: Any, page: Any) -> None:
    # Tall enough that each panel (detail pane open) fits: element screenshots of a
    # panel taller than the notebook area would include JupyterLab's toolbars.
    page.set_viewport_size({"width": 1280, "height": 1900})
    nb = open_notebook("e2e_history.ipynb", CELLS)
    runner = nb.run_cell(0).locator(".promptstate-widget")
    text_input = runner.locator("[data-variable=text]")
    text_input.wait_for()

    # Two edits typed into the runner, each synced (the rendered prompt follows).
    for value in ("first value", "second value"):
        _type(text_input, value)
        runner.locator('[data-role="user"]').filter(has_text=value).wait_for()
    runner.locator("[data-action=send]").click()
    runner.locator(".ps-status[data-status=success]").wait_for(timeout=20_000)

    # -- DevTools: filter, select, jump with a row's button --------------------------------
    dev = nb.run_cell(1).locator(".ps-devtools")
    dev.locator(".ps-action").first.wait_for()
    assert dev.locator("[data-field=position]").inner_text() == "live"
    _type(dev.locator("[data-field=filter-type]"), "variable_set")
    first_row = dev.locator(".ps-action[data-action-type='instances/variable_set']").filter(
        has_text="first value"
    )
    first_row.last.wait_for()
    dev.locator(".ps-action:not([data-action-type='instances/variable_set'])").first.wait_for(
        state="detached"
    )
    index = int(first_row.last.get_attribute("data-action-index") or "-1")
    first_row.last.click()  # select: payload and state diff
    dev.locator("[data-field=payload]").filter(has_text='"value": "first value"').wait_for()
    dev.locator("[data-field=diff] .ps-new").filter(has_text='"first value"').wait_for()

    first_row.last.locator("[data-action=jump]").click()
    dev.locator("[data-field=position]").filter(has_text=f"viewing #{index}").wait_for()
    runner.locator('[data-role="user"]').filter(has_text="first value").wait_for()
    assert text_input.input_value() == "first value"  # the other widget follows

    dev.locator("[data-action=resume]").click()
    dev.locator("[data-field=position]").filter(has_text="live").wait_for()
    runner.locator('[data-role="user"]').filter(has_text="second value").wait_for()
    assert text_input.input_value() == "second value"

    # -- the slider: move it to the action, then to the end (live again) --------------------
    _type(dev.locator("[data-field=filter-type]"), "")  # every action again
    dev.locator(".ps-action[data-action-type='runs/execute_pending']").first.wait_for()
    slider = dev.locator("[data-field=slider]")
    slider.fill(str(index))
    dev.locator("[data-field=position]").filter(has_text=f"viewing #{index}").wait_for()
    runner.locator('[data-role="user"]').filter(has_text="first value").wait_for()
    assert text_input.input_value() == "first value"
    # still selected since the click above: payload and diff are in the picture
    dev.locator("[data-field=payload]").filter(has_text="first value").wait_for()
    # the panel shows where we are: later actions are dimmed
    assert dev.locator(f".ps-action.ps-current[data-action-index='{index}']").count() == 1
    # ... and every widget says it shows the past
    dev.locator("[data-field=viewing-past]").wait_for()
    runner.locator("[data-field=viewing-past]").wait_for()
    # chunk actions are hidden by default, counted in the toggle
    assert dev.locator(".ps-action[data-action-type='runs/chunk_received']").count() == 0
    assert "hidden" in dev.locator("[data-field=chunk-count]").inner_text()
    slider.blur()
    _screenshot(dev, "devtools.png")
    _screenshot_dark(nb.page, dev, "devtools_dark.png")
    slider.fill(slider.get_attribute("max") or "")
    dev.locator("[data-field=position]").filter(has_text="live").wait_for()
    runner.locator('[data-role="user"]').filter(has_text="second value").wait_for()
    assert text_input.input_value() == "second value"
    runner.locator("[data-field=viewing-past]").wait_for(state="hidden")

    # -- SweepGrid: cells fill in live ------------------------------------------------------
    grid = nb.run_cell(2).locator(".ps-sweep")
    grid.locator("[data-field=counts][data-finished=true]").wait_for(timeout=30_000)
    assert grid.locator("td.ps-cell[data-status=success]").count() == 12
    grid.locator("td.ps-cell[data-row='2'][data-col='1'] .ps-cell-run").click()
    grid.locator("[data-field=run-detail] [data-field=response]").filter(
        has_text="Summarize for Ann: black coffee, no sugar"
    ).wait_for()
    assert "12/12 done" in grid.locator("[data-field=counts]").inner_text()
    _screenshot(grid, "sweep_grid.png")
    _screenshot_dark(nb.page, grid, "sweep_grid_dark.png")

    # -- RunHistory: query, a refused write, open a run, Re-run -----------------------------
    history = nb.run_cell(3).locator(".ps-history")
    rows = history.locator("tr[data-run-id]")
    rows.first.wait_for()
    box = history.locator("[data-field=query]")
    _type(box, "DELETE FROM runs")
    history.locator("[data-action=run-query]").click()
    error = history.locator("[data-field=error]")
    error.filter(has_text="ReadOnlyQueryError").wait_for()
    assert rows.count() == 13  # the table keeps the last good result

    _type(box, QUERY)
    history.locator("[data-action=run-query]").click()
    error.wait_for(state="hidden")
    history.locator("th").filter(has_text="latency_ms").wait_for()
    assert rows.count() == 13
    assert history.locator("[data-field=range]").inner_text() == "rows 1\u201313 of 13"
    history.locator("[data-field=chart] [data-series=latency_ms]").wait_for()

    # open the run sent from the runner (its reply names the second value), re-run it
    sent = runner.locator('[data-role="assistant"]').last.get_attribute("data-run-id")
    assert sent
    history.locator(f"tr[data-run-id='{sent}']").click()
    detail = history.locator("[data-field=run-detail]")
    detail.locator("[data-field=response]").filter(
        has_text="Summarize for Ann: second value"
    ).wait_for()
    assert detail.locator("[data-variable=text]").inner_text().startswith("text")
    # a failed re-run says so beside its button, not above the query box
    _type(detail.locator("[data-field=rerun-model]"), "nosuch:model")
    detail.locator("[data-action=rerun]").click()
    detail.locator("[data-field=rerun-error]").filter(has_text="UnknownProviderError").wait_for()
    assert error.is_hidden()
    _type(detail.locator("[data-field=rerun-model]"), "")
    detail.locator("[data-action=rerun]").click()
    history.locator("[data-field=range]").filter(has_text="of 14").wait_for(timeout=20_000)
    assert rows.count() == 14
    new_row = history.locator("tr.ps-new")
    new_row.wait_for()
    new_id = new_row.get_attribute("data-run-id")
    assert new_id and new_id != sent
    history.locator(f"[data-field=run-detail][data-run-id='{new_id}']").wait_for()
    assert (
        "second value"
        in history.locator("[data-field=run-detail] [data-field=response]").inner_text()
    )
    _screenshot(history, "run_history.png")
