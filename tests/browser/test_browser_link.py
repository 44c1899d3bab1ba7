"""End to end: stock ipywidgets bound with ``inst.bind`` in JupyterLab, driven by Chromium.

A Textarea bound to a variable, a slider bound to a setting and a Button that calls
``inst.send_soon()``: typing in the page and clicking must log a run with exactly the
typed text and the slider's value.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.browser.conftest import type_into

pytestmark = pytest.mark.browser

SETUP = """\
import ipywidgets as widgets
import promptstate as ps

session = ps.Session(db="e2e_link.duckdb")
session.prompts.register(ps.Prompt(
    id="ask", messages=[ps.user("{{question}}")], variables={"question": "untouched"},
    model="echo",
))
inst = session.start("ask")
question = inst.bind("question", widgets.Textarea())
question.add_class("e2e-question")
temperature = inst.bind("settings.temperature", widgets.FloatSlider(value=0.4, max=2.0))
send = widgets.Button(description="Send")
send.add_class("e2e-send")
reply = widgets.Output()
reply.add_class("e2e-reply")

def on_send(_button):
    def show(future):
        run = future.result()
        reply.append_stdout(f"[{run.status}] {run.response}")
    inst.send_soon().add_done_callback(show)

send.on_click(on_send)
widgets.VBox([question, temperature, send, reply])
"""

QUERY_RUNS = """\
import json
rows = session.runs.sql(
    "SELECT status, response, variables, settings FROM runs WHERE session_id = ?",
    [session.id],
).fetchall()
print("RUNS=" + json.dumps(rows))
"""


def test_typed_text_in_a_bound_textarea_is_what_the_button_sends(open_notebook: Any) -> None:
    nb = open_notebook("e2e_link.ipynb", [SETUP, QUERY_RUNS])
    cell = nb.run_cell(0)
    box = cell.locator(".e2e-question textarea")
    box.wait_for()
    assert box.input_value() == "untouched"  # the store's value, shown by the control

    typed = "typed in the page, then sent"
    type_into(box, typed)
    cell.locator(".e2e-send").click()
    cell.locator(".e2e-reply").filter(has_text="[success]").wait_for(timeout=60_000)
    assert typed in cell.locator(".e2e-reply").inner_text()

    nb.run_cell(1)
    line = next(ln for ln in nb.output_text(1).splitlines() if ln.startswith("RUNS="))
    rows = json.loads(line.removeprefix("RUNS="))
    assert len(rows) == 1, rows
    status, response, variables, settings = rows[0]
    assert status == "success"
    assert response == typed
    assert typed in variables
    assert json.loads(settings)["temperature"] == 0.4
