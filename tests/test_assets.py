"""The built front end: ``js/build.mjs`` bundles ``js/src/`` into ``widgets/static/``.

Checks the bundle the widgets serve: every file is there, each module is one
self-contained ES module (helpers bundled once, nothing left to import, a default export
with ``render``), each stylesheet carries the theme once, the widget classes serve the
files by path (so anywidget can hot-reload them), and a missing or stale bundle says how
to rebuild it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from anywidget._file_contents import FileContents

from promptstate.widgets import _assets
from promptstate.widgets._devtools_widget import DevTools
from promptstate.widgets._history_widget import RunHistory
from promptstate.widgets._panel import PanelWidget
from promptstate.widgets._sweep_widget import SweepGrid
from promptstate.widgets._widgets import PromptRunner, _InstanceWidget

MODULES = ("widget.js", "devtools.js", "history.js", "sweep.js")
STYLESHEETS = ("widget.css", "panels.css")


@pytest.mark.parametrize("name", MODULES + STYLESHEETS)
def test_every_bundle_is_built_into_static(name: str) -> None:
    path = _assets.asset(name)
    assert path == _assets.STATIC_DIR / name
    assert path.parent.name == "static" and path.parent.parent.name == "widgets"
    assert "built by js/build.mjs" in path.read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.parametrize("name", MODULES)
def test_each_module_bundles_the_helpers_once_and_imports_nothing(name: str) -> None:
    text = _assets.module(name).read_text(encoding="utf-8")
    # one copy of each shared helper, not common.js pasted in front of the widget
    assert len(re.findall(r"^function h\(", text, re.M)) == 1
    assert len(re.findall(r"^function (\w+)\(", text, re.M)) == len(
        set(re.findall(r"^function (\w+)\(", text, re.M))
    )
    assert "prepends this file" not in text
    # anywidget loads the module from a blob: URL, where no relative import resolves
    assert not re.search(r"^\s*import\b", text, re.M)
    assert not re.search(r"""\bfrom\s+["']\.""", text)
    # the one default export, at the end
    assert text.rstrip().splitlines()[-1].startswith("export default ")
    assert text.count("export default") == 1
    assert "export {" not in text
    # no page-wide global shared between widgets
    assert "globalThis" not in text and "window." not in text


@pytest.mark.parametrize("name", STYLESHEETS)
def test_each_stylesheet_bundles_the_theme_once(name: str) -> None:
    text = _assets.stylesheet(name).read_text(encoding="utf-8")
    assert "@import" not in text
    assert text.count("--ps-fg:") == 1
    own = ".promptstate-widget .ps-send" if name == "widget.css" else ".promptstate-panel .ps-grid"
    assert own in text


def test_widgets_serve_the_built_files_by_path() -> None:
    assert isinstance(_assets.module("widget.js"), Path)
    assert isinstance(_assets.stylesheet("panels.css"), Path)
    served = {
        (_InstanceWidget, "_esm"): "widget.js",
        (_InstanceWidget, "_css"): "widget.css",
        (DevTools, "_esm"): "devtools.js",
        (RunHistory, "_esm"): "history.js",
        (SweepGrid, "_esm"): "sweep.js",
        (PanelWidget, "_css"): "panels.css",
    }
    for (cls, key), name in served.items():
        value = getattr(cls, key)
        # anywidget turns a Path into FileContents, which re-reads (and with
        # ANYWIDGET_HMR=1 watches) the file; a string would be a frozen copy
        assert isinstance(value, FileContents), (cls, key, type(value))
        assert str(value) == (_assets.STATIC_DIR / name).read_text(encoding="utf-8")
    assert PromptRunner._esm is _InstanceWidget._esm


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("name", MODULES)
def test_each_module_loads_in_node_with_a_render_default_export(name: str) -> None:
    # Importing needs no DOM (rendering does): only checks the module evaluates and
    # exports what anywidget calls.
    url = _assets.module(name).as_uri()
    script = (
        f"const m = await import({json.dumps(url)});"
        "console.log(JSON.stringify({keys: Object.keys(m), render: typeof m.default?.render}));"
    )
    out = subprocess.run(
        ["node", "--input-type=module", "-e", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(out.stdout) == {"keys": ["default"], "render": "function"}


def test_a_missing_bundle_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_assets, "STATIC_DIR", tmp_path / "static")
    with pytest.raises(FileNotFoundError, match=r"npm run build.*pip install -e \."):
        _assets.module("widget.js")


def test_a_bundle_older_than_its_sources_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "widget.js").write_text("export default {};\n", encoding="utf-8")
    sources = tmp_path / "js" / "src"
    (sources / "lib").mkdir(parents=True)
    edited = sources / "lib" / "format.js"
    edited.write_text("// edited\n", encoding="utf-8")
    built = static.stat().st_mtime
    os.utime(edited, (built + 5, built + 5))
    monkeypatch.setattr(_assets, "STATIC_DIR", static)
    monkeypatch.setattr(_assets, "_SOURCES", sources)
    _assets._warn_if_stale.cache_clear()
    try:
        with caplog.at_level(logging.WARNING, logger="promptstate"):
            assert _assets.module("widget.js") == static / "widget.js"
        assert any(
            "lib/format.js" in r.getMessage() and "npm run build" in r.getMessage()
            for r in caplog.records
        ), caplog.text

        # rebuilt: the folder's time moves past the source; no warning
        caplog.clear()
        os.utime(static, (built + 10, built + 10))
        _assets._warn_if_stale.cache_clear()
        with caplog.at_level(logging.WARNING, logger="promptstate"):
            _assets.module("widget.js")
        assert not caplog.records, caplog.text
    finally:
        _assets._warn_if_stale.cache_clear()
