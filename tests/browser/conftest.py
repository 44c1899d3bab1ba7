"""Browser harness: a real JupyterLab on 127.0.0.1 driven by headless Chromium.

Session fixtures start one ``jupyter lab`` server and one Chromium for the whole
browser suite; each test gets a fresh page. :class:`LabNotebook` writes a notebook
with nbformat, opens it, waits for the kernel and runs cells.

Other front ends reuse the pieces: :func:`serve` starts any server process, waits until
it answers and always stops it; :func:`start_jupyter` starts ``jupyter lab`` or Notebook 7
(``jupyter notebook``), whose notebook page :class:`LabNotebook` drives too
(``ui="notebook"``); :func:`wait_http` polls a URL.

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
from collections.abc import Callable, Iterator
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
    config.addinivalue_line(
        "markers", "browser: end-to-end test in headless Chromium (JupyterLab, Notebook 7, marimo)"
    )


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LabServer:
    """A running Jupyter server: ``jupyter lab``, or Notebook 7 when ``ui="notebook"``."""

    url: str
    token: str
    root_dir: Path
    log: Path
    ui: str = "lab"

    def notebook_url(self, name: str) -> str:
        if self.ui == "notebook":
            return f"{self.url}/notebooks/{name}?token={self.token}"
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


def wait_http(url: str, timeout: float = 10) -> None:
    """One GET of ``url``; raises (``URLError``, ``ConnectionError``...) until it answers."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        resp.read()


_NOT_YET = (urllib.error.URLError, ConnectionError, TimeoutError, OSError)


@contextlib.contextmanager
def serve(
    cmd: list[str],
    *,
    ready: Callable[[], object],
    log: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    what: str = "server",
    timeout: float = 180,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``cmd`` (output to ``log``) until the block ends; it is always stopped.

    ``ready()`` is called until it stops raising a connection error; the process
    exiting first, or ``timeout`` seconds (generous: a loaded machine starts slowly),
    fails the test with the end of the log.
    """
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{what} exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
            try:
                ready()
                break
            except _NOT_YET:
                if time.monotonic() > deadline:
                    pytest.fail(f"{what} not ready after {timeout}s:\n{log.read_text()[-4000:]}")
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kernel_env(**extra: str) -> dict[str, str]:
    """The environment for a server whose kernels import promptstate from the checkout."""
    env = dict(os.environ)
    # The kernel inherits this: it imports promptstate from the checkout even when
    # the package is not installed.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p
    )
    env.update(PYDEVD_DISABLE_FILE_VALIDATION="1", **extra)
    return env


@contextlib.contextmanager
def start_jupyter(base: Path, ui: str = "lab") -> Iterator[LabServer]:
    """A ``jupyter lab`` (``ui="lab"``) or Notebook 7 (``ui="notebook"``) server on
    127.0.0.1 with its own config, settings and runtime dirs under ``base``."""
    root = base / "root"
    settings = base / "settings"
    root.mkdir(parents=True)
    for rel, value in _LAB_SETTINGS.items():
        path = settings / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))

    port = free_port()
    token = secrets.token_hex(16)
    env = kernel_env(
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(base / "workspaces"),
        JUPYTER_CONFIG_DIR=str(base / "config"),
        JUPYTER_RUNTIME_DIR=str(base / "runtime"),
    )
    app = {"lab": ("jupyterlab", "LabApp"), "notebook": ("notebook", "JupyterNotebookApp")}
    module, app_class = app[ui]
    cmd = [
        sys.executable, "-m", module,
        "--no-browser", "--allow-root",
        "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
    ]  # fmt: skip
    if ui == "lab":
        cmd += [
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    server = LabServer(f"http://127.0.0.1:{port}", token, root, base / f"{ui}.log", ui)
    with serve(
        cmd,
        ready=lambda: server.api("/api/status"),
        log=server.log,
        cwd=root,
        env=env,
        what=f"jupyter {ui} ({app_class})",
    ):
        yield server


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with start_jupyter(tmp_path_factory.mktemp("lab"), ui="lab") as server:
        yield server


@contextlib.contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Debian's Chromium through Playwright (skips the test when it is not installed)."""
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with launch_chromium() as b:
        yield b


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


_NOTEBOOK7_KERNEL_IDLE = """() => {
  const bar = document.querySelector(".jp-NotebookPanel-toolbar");
  const status = bar && bar.querySelector(".jp-Notebook-ExecutionIndicator");
  const name = bar && bar.querySelector(".jp-KernelName");
  return !!(status && name && status.dataset.status === "idle"
            && name.textContent.trim() && name.textContent.trim() !== "No Kernel");
}"""


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
        Notebook 7 has no status bar: its toolbar indicator must say idle while the
        kernel name beside it is a kernel's ("No Kernel" until one is attached).
        """
        if self.server.ui == "notebook":
            self.page.wait_for_function(_NOTEBOOK7_KERNEL_IDLE, timeout=timeout)
            return
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


# -- helpers for the promptstate widgets in any front end ------------------------------------


def type_into(locator: Locator, text: str) -> None:
    """Replace an input's text with real key presses (as a user types)."""
    locator.click()
    locator.press("Control+a")
    locator.press("Delete")
    locator.press_sequentially(text, delay=5)


def variable_row_misalignments(runner: Locator, names: list[str]) -> list[str]:
    """Where the variables form's rows fall apart, as readable lines (empty: all fine).

    Every visible part of variable ``name``'s row (its label, source badge and reset
    button) must have its vertical centre within the vertical extent of the row's input.
    """
    problems: list[str] = []
    for name in names:
        row = runner.locator(f"[data-row={name}]")
        box = runner.locator(f"[data-variable={name}]").bounding_box()
        if box is None:
            problems.append(f"{name}: the input is not laid out")
            continue
        top, bottom = box["y"], box["y"] + box["height"]
        for part, selector in (
            ("label", ".ps-var-name"),
            ("badge", ".ps-badge"),
            ("reset", ".ps-reset"),
        ):
            el = row.locator(selector).first
            if not el.count() or not el.is_visible():
                continue
            b = el.bounding_box()
            assert b is not None
            mid = b["y"] + b["height"] / 2
            if not top <= mid <= bottom:
                problems.append(
                    f"{name}: {part} centred at y={mid:.0f}, "
                    f"its input spans y={top:.0f}..{bottom:.0f}"
                )
    return problems
