"""Browser harness: a real JupyterLab on 127.0.0.1 driven by headless Chromium.

Session fixtures start one ``jupyter lab`` server and one Chromium for the whole
browser suite; each test gets a fresh page. :class:`LabNotebook` writes a notebook
with nbformat, opens it, waits for the kernel and runs cells.

Chromium is Debian's ``chromium`` package (``playwright install`` needs the network),
launched through Playwright's ``executable_path``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

REPO = Path(__file__).resolve().parents[2]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# Lab settings that stop it from reaching out to the internet and popping toasts
# over the notebook (news, update checks).
_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
        "doNotDisturbMode": True,
    },
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: end-to-end test in JupyterLab + headless Chromium")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LabServer:
    """A running ``jupyter lab`` process."""

    url: str
    token: str
    root_dir: Path
    log: Path

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"

    def api(self, path: str, method: str = "GET") -> Any:
        req = urllib.request.Request(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
        return json.loads(body) if body else None

    def shutdown_kernel(self, notebook: str) -> None:
        """Shut down the kernel of ``notebook`` and wait until it is gone."""
        for sess in self.api("/api/sessions"):
            if sess["path"] == notebook and sess.get("kernel"):
                self.api(f"/api/kernels/{sess['kernel']['id']}", method="DELETE")


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    settings = base / "settings"
    root.mkdir()
    for rel, value in _LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))

    port = _free_port()
    token = secrets.token_hex(16)
    env = dict(os.environ)
    # The kernel inherits this: it imports promptstate from the checkout even when
    # the package is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    log = base / "jupyter.log"
    cmd = [
        sys.executable, "-m", "jupyterlab",
        "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=out, stderr=subprocess.STDOUT)
    server = LabServer(f"http://127.0.0.1:{port}", token, root, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited:\n{log.read_text()[-4000:]}")
            try:
                server.api("/api/status")
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab not ready:\n{log.read_text()[-4000:]}")
                time.sleep(0.2)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    executable = _chromium()
    if executable is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


_CALL_FAILED = pytest.StashKey[bool]()
ARTIFACTS = Path(os.environ.get("PROMPTSTATE_BROWSER_ARTIFACTS", "/tmp/promptstate-browser"))


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    console: list[str] = []
    pg.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    pg.on("pageerror", lambda exc: console.append(f"pageerror: {exc}"))
    try:
        yield pg
    finally:
        if request.node.stash.get(_CALL_FAILED, False):
            # Leave evidence for a failing test: a screenshot and the console log.
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            stem = ARTIFACTS / request.node.name
            Path(f"{stem}.console.txt").write_text("\n".join(console))
            with contextlib.suppress(Exception):  # the page may be gone
                pg.screenshot(path=f"{stem}.png", full_page=True)
        context.close()


class LabNotebook:
    """A notebook file opened in the browser.

    Parameters
    ----------
    server, page
        The fixtures.
    name
        File name relative to the server root.
    cells
        Source of the code cells, written with nbformat before opening.
    """

    def __init__(self, server: LabServer, page: Page, name: str, cells: list[str]):
        import nbformat

        self.server = server
        self.page = page
        self.name = name
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3 (ipykernel)",
            "language": "python",
        }
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nbformat.write(nb, server.root_dir / name)

    @property
    def path(self) -> Path:
        return self.server.root_dir / self.name

    def open(self) -> LabNotebook:
        self.page.goto(self.server.notebook_url(self.name))
        self.page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for()
        self.wait_idle(timeout=60_000)
        return self

    def wait_idle(self, timeout: float = 30_000) -> None:
        """Wait until a kernel is attached and the status bar reports it Idle.

        The toolbar indicator says "idle" before any kernel exists, and a cell run
        then is silently dropped, so we wait for the status bar's kernel text.
        """
        self.page.locator(".jp-StatusBar-Widget").filter(
            has_text=re.compile(r"\|\s*Idle")
        ).first.wait_for(timeout=timeout)

    def cell(self, index: int) -> Locator:
        return self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)

    def run_cell(self, index: int, timeout: float = 60_000) -> Locator:
        """Select cell ``index``, run it with Shift+Enter and wait for it to finish.

        Finished means the prompt shows a new execution count ``[n]``.
        """
        cell = self.cell(index)
        prompt = cell.locator(".jp-InputPrompt")
        before = prompt.inner_text().strip()
        prompt.click()
        self.page.keyboard.press("Shift+Enter")
        deadline = time.monotonic() + timeout / 1000
        while True:
            text = prompt.inner_text().strip()
            if re.fullmatch(r"\[\d+\]:?", text) and text != before:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"cell {index} did not finish: prompt {text!r}")
            time.sleep(0.05)
        return cell

    def output_text(self, index: int) -> str:
        return self.cell(index).locator(".jp-OutputArea").inner_text()


@pytest.fixture
def open_notebook(lab_server: LabServer, page: Page) -> Any:
    """Factory: ``open_notebook(name, cells)`` writes, opens and returns it."""

    def factory(name: str, cells: list[str]) -> LabNotebook:
        return LabNotebook(lab_server, page, name, cells).open()

    return factory
