"""End to end: the PromptRunner in JupyterLab, driven by headless Chromium.

The echo provider streams the rendered prompt back word by word, so everything runs
offline and the reply text says exactly which variable values went out.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "docs" / "screenshots" / "prompt_runner.png"
SCREENSHOT_DARK = REPO / "docs" / "screenshots" / "prompt_runner_dark.png"
ARTIFACTS = Path(os.environ.get("PROMPTSTATE_BROWSER_ARTIFACTS", "/tmp/promptstate-browser"))

SETUP = """\
import promptstate as ps

session = ps.Session(db={db!r})
session.prompts.register(ps.Prompt(
    id="summarize",
    messages=[ps.system("You are terse."),
              ps.user("Summarize for {{{{user_name}}}}: {{{{text}}}}")],
    variables={{"text": "", "user_name": "Ann"}},
    model="echo",
    settings={{"echo_delay": {delay}}},
))
inst = session.start("summarize", variables={{"text": "a first draft"}})
inst
"""

QUERY_RUNS = """\
import json
rows = session.runs.sql(
    "SELECT status, response, variables FROM runs ORDER BY started_at"
).fetchall()
print("RUNS=" + json.dumps(rows))
"""

# Records every visible change of the widget (status + last assistant text) from the
# page itself, so the test sees the streaming as the browser saw it.
RECORDER = """\
(root) => {
  const log = [];
  const snap = () => {
    const msgs = root.querySelectorAll('[data-role="assistant"] .ps-content');
    const last = msgs.length ? msgs[msgs.length - 1].textContent : null;
    const status = root.querySelector('[data-status]').dataset.status;
    const prev = log[log.length - 1];
    if (!prev || prev.text !== last || prev.status !== status) {
      log.push({ t: performance.now(), status, text: last });
    }
  };
  new MutationObserver(snap).observe(root, { subtree: true, childList: true,
    characterData: true, attributes: true });
  snap();
  window.__psLog = log;
}
"""


def _publish(shot: Path, target: Path) -> None:
    # docs/ keeps a stable picture (latencies differ run to run): refresh it only on
    # request, or when it is missing.
    if os.environ.get("PROMPTSTATE_UPDATE_SCREENSHOTS") or not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)


def _set_theme(page: Any, name: str) -> None:
    page.get_by_role("menuitem", name="Settings").click()
    page.get_by_text("Theme", exact=True).click()
    page.get_by_text(name, exact=True).click()
    page.locator(f"body[data-jp-theme-name='{name}']").wait_for(state="attached")


def _runs(nb: Any, cell: int) -> list[list[Any]]:
    nb.run_cell(cell)
    text = nb.output_text(cell)
    line = next(ln for ln in text.splitlines() if ln.startswith("RUNS="))
    rows: list[list[Any]] = json.loads(line.removeprefix("RUNS="))
    return rows


def _type(locator: Any, text: str) -> None:
    """Replace the input's text with real key presses."""
    locator.click()
    locator.press("Control+a")
    locator.press("Delete")
    locator.press_sequentially(text, delay=5)


def test_send_streams_reply_and_logs_run(open_notebook: Any, lab_server: Any, page: Any) -> None:
    # Kernel websocket frames the page sends: shows what the Send click carried.
    sent: list[str] = []
    page.on(
        "websocket",
        lambda ws: ws.on(
            "framesent",
            lambda p: sent.append(p.decode("utf-8", "replace") if isinstance(p, bytes) else p),
        ),
    )
    nb = open_notebook(
        "e2e_send.ipynb", [SETUP.format(db="e2e_send.duckdb", delay=0.06), QUERY_RUNS]
    )
    runner_cell = nb.run_cell(0)
    runner = runner_cell.locator(".promptstate-widget")
    text_input = runner.locator("[data-variable=text]")
    text_input.wait_for()
    assert text_input.input_value() == "a first draft"
    assert runner.locator("[data-row=text] .ps-badge").inner_text() == "instance"
    assert runner.locator("[data-row=user_name] .ps-badge").inner_text() == "default"

    # 1. Type, let the debounce sync it (the badge and the rendered prompt follow),
    #    then Send and watch the reply stream in.
    first = "the quarterly numbers are up and the team is happy"
    _type(text_input, first)
    runner.locator('[data-role="user"]').filter(has_text=first).wait_for()
    runner.element_handle().evaluate(RECORDER)
    runner.locator("[data-action=send]").click()
    expected = f"Summarize for Ann: {first}"
    runner.locator(".ps-status[data-status=running]").wait_for()

    # 2. Edit while the reply streams: the run in flight must not change.
    _type(text_input, "edited while streaming")
    runner.locator(".ps-status[data-status=success]").wait_for(timeout=20_000)
    reply = runner.locator('[data-role="assistant"] .ps-content').last
    assert reply.inner_text() == expected

    log = nb.page.evaluate("window.__psLog")
    streamed = [e for e in log if e["status"] == "running" and e["text"]]
    partial = [e for e in streamed if e["text"] != expected]
    assert partial, f"no partial reply was ever shown: {log}"
    assert all(expected.startswith(e["text"]) for e in partial)
    # Coalesced: the reply has 15 words at 60 ms each; one sync per word at most.
    assert len(streamed) <= 16, log
    assert "in /" in runner.locator("[data-field=metrics]").inner_text()
    # The reply answers the prompt as sent; the view says the prompt has moved on.
    runner.locator("[data-field=outdated]").wait_for()

    rows = _runs(nb, 1)
    assert len(rows) == 1
    status, response, variables = rows[0]
    assert (status, response) == ("success", expected)
    assert json.loads(variables)["text"] == {"value": first, "source": "instance"}

    # 3. A new value and Send at once: the click carries the value the debounce has
    #    not synced yet, so it is what goes out.
    second = "the launch slipped a week but support tickets halved"
    _type(text_input, second)
    runner.locator("[data-action=send]").click()
    carried = json.dumps({"text": second}, separators=(",", ":"))
    runner.locator('[data-role="assistant"] .ps-content').filter(
        has_text=f"Summarize for Ann: {second}"
    ).wait_for()
    runner.locator(".ps-status[data-status=success]").wait_for()

    assert runner.locator("[data-field=outdated]").is_hidden()
    # The value reached the kernel before the send was rendered: inside the click
    # message, or (when the debounce fired first, e.g. on a slow machine) as an update
    # the comm delivered ahead of the click.
    send_at = next(i for i, f in enumerate(sent) if '"type":"send"' in f and '"seq":2' in f)
    update = json.dumps(second)
    assert f'"variables":{carried}' in sent[send_at] or any(
        '"type":"set_variable"' in f and update in f for f in sent[:send_at]
    ), [f for f in sent if '"type":"send"' in f or '"set_variable"' in f]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "prompt_runner.png"
    runner.screenshot(path=str(shot))
    _publish(shot, SCREENSHOT)

    rows = _runs(nb, 1)
    assert [r[1] for r in rows] == [expected, f"Summarize for Ann: {second}"]

    # The DuckDB file itself, read after the kernel has let go of it.
    lab_server.shutdown_kernel(nb.name)
    import duckdb

    con = duckdb.connect(str(lab_server.root_dir / "e2e_send.duckdb"), read_only=True)
    try:
        got = con.execute(
            "SELECT status, json_extract_string(variables, '$.text.value') FROM runs "
            "ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()
    assert got == [("success", first), ("success", second)]


SYNC_CELLS = [
    SETUP.format(db=None, delay=0.2),
    # A second runner on the same instance; also notes which thread comm messages
    # arrive on (JupyterLab >= 4.4 can send them to a kernel subshell thread).
    """\
import threading
comm_threads = set()
runner_b = ps.widgets.PromptRunner(inst)
runner_b.on_msg(lambda *_: comm_threads.add(threading.current_thread().name))
runner_b""",
    """\
session.prompts.register(ps.Prompt(id="greet", messages=[ps.user("Hello {{name}}")], model="echo"))
other = session.start("greet")
other""",
    'inst.set_variable("user_name", "Bob")',
    "print(repr(inst.variables['text'].value), repr(other.variables['name']))",
    'inst.set_variable("text", "line one\\nline two")',
    "print('comm threads:', sorted(comm_threads), 'main:', threading.current_thread().name)",
]


def test_runners_stay_in_sync_stop_and_errors(open_notebook: Any) -> None:
    nb = open_notebook("e2e_sync.ipynb", SYNC_CELLS)
    for i in range(3):
        nb.run_cell(i)
    a = nb.cell(0).locator(".promptstate-widget")
    b = nb.cell(1).locator(".promptstate-widget")
    other = nb.cell(2).locator(".promptstate-widget")

    # Typing in one runner shows in the other runner of the same instance only.
    _type(a.locator("[data-variable=text]"), "typed in A")
    b.locator('[data-role="user"]').filter(has_text="typed in A").wait_for()
    assert b.locator("[data-variable=text]").input_value() == "typed in A"
    assert other.locator("[data-row=name] .ps-badge").inner_text() == "missing"

    # A change made in code reaches both views of that instance.
    nb.run_cell(3)
    for runner in (a, b):
        row = runner.locator("[data-row=user_name]")
        row.locator(".ps-badge[data-source=instance]").wait_for()
        assert row.locator("[data-variable=user_name]").input_value() == "Bob"
    nb.run_cell(4)
    assert "'typed in A' VariableValue(value=None, source='missing')" in nb.output_text(4)

    # Send from B, stop from A: the run is cancelled and both views say so.
    b.locator("[data-action=send]").click()
    a.locator(".ps-status[data-status=running]").wait_for()
    a.locator('[data-role="assistant"] .ps-content').filter(has_text="Summarize").wait_for()
    a.locator("[data-action=stop]").click()
    for runner in (a, b):
        runner.locator(".ps-status[data-status=cancelled]").wait_for()
    assert other.locator(".ps-status").get_attribute("data-status") == "idle"

    # A multi-line value set in code turns the input into a textarea in both views.
    nb.run_cell(5)
    for runner in (a, b):
        area = runner.locator("textarea[data-variable=text]")
        area.wait_for()
        assert area.input_value() == "line one\nline two"

    # An error from the send is shown in the widget, not lost in a log.
    other.locator("[data-action=send]").click()
    error = other.locator("[data-field=error]")
    error.filter(has_text="MissingVariablesError").wait_for()
    _type(other.locator("[data-variable=name]"), "Ada")
    other.locator("[data-action=send]").click()
    other.locator('[data-role="assistant"] .ps-content').filter(has_text="Hello Ada").wait_for()
    assert error.is_hidden()

    # The composer: Shift+Enter is a new line (not "run cell"), Enter sends.
    box = other.locator("[data-field=composer]")
    box.click()
    box.press_sequentially("how are you")
    box.press("Shift+Enter")
    box.press_sequentially("today")
    box.press("Enter")
    reply = other.locator('[data-role="assistant"] .ps-content').filter(has_text="today")
    reply.wait_for()
    assert reply.inner_text() == "how are you\ntoday"
    assert box.input_value() == ""

    # The reset button drops the instance value: back to the prompt default.
    a.locator("[data-reset=user_name]").click()
    a.locator("[data-row=user_name] .ps-badge[data-source=default]").wait_for()
    assert b.locator("[data-variable=user_name]").input_value() == "Ann"

    # Keys typed into the widgets never reached JupyterLab's shortcuts ("a", "b" add
    # cells, Shift+Enter runs one).
    assert nb.page.locator(".jp-NotebookPanel .jp-Cell").count() == len(SYNC_CELLS)
    # For the log only: ipykernel >= 7 routes a comm's messages to the subshell that
    # last published on it, so here they may well arrive on the main thread.
    nb.run_cell(6)
    print(nb.output_text(6))

    # Readable in the dark theme too (theme variables, no hard-coded colours).
    _set_theme(nb.page, "JupyterLab Dark")
    try:
        nb.page.wait_for_timeout(300)  # let the theme's CSS variables apply
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "prompt_runner_dark.png"
        other.screenshot(path=str(shot))
        _publish(shot, SCREENSHOT_DARK)
    finally:
        _set_theme(nb.page, "JupyterLab Light")


STATES_CELLS = [
    SETUP.format(db=None, delay=0.15),
    "inst.set_variable('text', 'a second draft, edited after the reply was cancelled')",
]


def test_cancelled_reply_preview_and_settings(open_notebook: Any, page: Any) -> None:
    """A stopped reply stays with its badge; the next request shows apart as a preview."""
    nb = open_notebook("e2e_states.ipynb", STATES_CELLS)
    runner = nb.run_cell(0).locator(".promptstate-widget")
    runner.locator("[data-variable=text]").wait_for()
    # before the first send, the list is the preview itself (no separate block)
    runner.locator("[data-field=preview-label]").wait_for()
    assert runner.locator(".ps-msg[data-status=preview]").count() == 2
    assert runner.locator("[data-field=preview]").is_hidden()
    # the settings row: the prompt's model, and settings carried with the Send
    assert runner.locator("[data-field=model]").input_value() == "echo"
    runner.locator("[data-field=temperature]").fill("0.4")
    runner.locator("[data-action=send]").click()
    runner.locator(".ps-msg[data-status=streaming]").wait_for()
    runner.locator('[data-role="assistant"] .ps-content').filter(has_text="Summarize").wait_for()
    runner.locator("[data-action=stop]").click()
    cancelled = runner.locator('.ps-msg[data-role="assistant"][data-status=cancelled]')
    cancelled.wait_for()
    assert cancelled.locator(".ps-msg-badge").inner_text() == "cancelled"
    assert cancelled.locator(".ps-content").inner_text().startswith("Summarize")  # partial kept

    nb.run_cell(1)  # the live variables move on: the next request differs
    block = runner.locator("[data-field=preview]")
    block.wait_for()
    assert block.get_attribute("open") is None  # collapsed while there is a conversation
    block.locator("summary").click()
    block.locator('[data-preview-role="user"]').filter(has_text="second draft").wait_for()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "prompt_runner_states.png"
    runner.screenshot(path=str(shot))
    _publish(shot, SCREENSHOT.with_name("prompt_runner_states.png"))
    _set_theme(nb.page, "JupyterLab Dark")
    try:
        nb.page.wait_for_timeout(300)  # let the theme's CSS variables apply
        shot = ARTIFACTS / "prompt_runner_states_dark.png"
        runner.screenshot(path=str(shot))
        _publish(shot, SCREENSHOT.with_name("prompt_runner_states_dark.png"))
    finally:
        _set_theme(nb.page, "JupyterLab Light")
    # a bad setting is refused in the widget, before anything is sent
    runner.locator("[data-field=temperature]").fill("7")
    runner.locator("[data-action=send]").click()
    error = runner.locator("[data-field=error]")
    error.filter(has_text="temperature must be a number from 0 to 2").wait_for()
    assert runner.locator(".ps-status").inner_text() == "cancelled"  # nothing ran
