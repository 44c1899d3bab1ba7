"""End to end: the PromptRunner inside marimo (``mo.ui.anywidget``), in headless Chromium.

A marimo app file creates a session, an instance and the wrapped widget; ``marimo run``
serves it on 127.0.0.1 and every page load gets its own fresh app session. Offline on
the echo provider, so the reply text says which values went out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.conftest import (
    free_port,
    kernel_env,
    serve,
    type_into,
    variable_row_misalignments,
    wait_http,
)

pytestmark = pytest.mark.browser

# Three variables left at their defaults (their reset buttons hidden), then one with an
# instance value (its reset button shown): if hidden reset buttons drop out of the form's
# grid, every later cell shifts and the last reset lands on another row than its input.
APP = """\
import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo
    import promptstate as ps

    session = ps.Session(db="marimo_runs.duckdb")
    session.prompts.register(ps.Prompt(
        id="greet",
        messages=[ps.system("Be {{tone}}."),
                  ps.user("{{greeting}} {{name}}, about {{topic}}")],
        variables={"greeting": "Hello", "name": "Ann", "tone": "brief", "topic": ""},
        model="echo",
    ))
    inst = session.start("greet", variables={"topic": "the weather"})
    return inst, mo, ps


@app.cell
def _(inst, mo, ps):
    runner = mo.ui.anywidget(ps.widgets.PromptRunner(inst))
    runner
    return (runner,)


if __name__ == "__main__":
    app.run()
"""
VARIABLES = ["greeting", "name", "tone", "topic"]


@pytest.fixture(scope="module")
def marimo_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``marimo run`` serving :data:`APP`; yields its URL and stops it afterwards."""
    pytest.importorskip("marimo")
    base = tmp_path_factory.mktemp("marimo")
    (base / "app.py").write_text(APP)
    port = free_port()
    env = kernel_env(
        MARIMO_SKIP_UPDATE_CHECK="1",
        # marimo's config, state and cache stay in the temp dir, not in $HOME.
        XDG_CONFIG_HOME=str(base / "config"),
        XDG_STATE_HOME=str(base / "state"),
        XDG_CACHE_HOME=str(base / "cache"),
    )
    cmd = [
        sys.executable, "-m", "marimo", "-q",
        "run", "app.py", "--headless", "--no-token", "--no-sandbox",
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with serve(
        cmd,
        ready=lambda: wait_http(f"{url}/health"),
        log=base / "marimo.log",
        cwd=base,
        env=env,
        what="marimo run",
    ):
        yield url


def _open_runner(page: Any, url: str) -> Any:
    """Load the app and return the PromptRunner once its inputs are rendered."""
    page.goto(url)
    runner = page.locator("marimo-anywidget .promptstate-widget")
    runner.locator("[data-variable=topic]").wait_for(timeout=120_000)
    return runner


def test_send_in_marimo_shows_the_reply(marimo_app: str, page: Any) -> None:
    runner = _open_runner(page, marimo_app)
    topic = runner.locator("[data-variable=topic]")
    assert topic.input_value() == "the weather"

    type_into(topic, "the launch plan")
    runner.locator("[data-action=send]").click()
    expected = "Hello Ann, about the launch plan"
    runner.locator('[data-role="assistant"] .ps-content').filter(has_text=expected).wait_for(
        timeout=60_000
    )
    runner.locator(".ps-status[data-status=success]").wait_for(timeout=60_000)
    assert runner.locator('[data-role="assistant"] .ps-content').last.inner_text() == expected
    # The typed value reached the store too: its badge says the instance supplied it.
    assert runner.locator("[data-row=topic] .ps-badge").inner_text() == "instance"


# marimo adopts its Tailwind preflight into the anywidget shadow root; its layered
# `[hidden] { display: none !important }` once pulled hidden reset buttons out of the
# 4-column `.ps-variables` grid. The reset is now hidden with a class (visibility only).
def test_variables_form_rows_hold_together_in_marimo(marimo_app: str, page: Any) -> None:
    runner = _open_runner(page, marimo_app)
    runner.locator("[data-row=topic] .ps-reset").wait_for()
    assert variable_row_misalignments(runner, VARIABLES) == []
