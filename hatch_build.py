"""Hatch build hook: bundle the widgets' front end before a wheel is built.

Runs for wheels and editable installs (``pip install -e .``): ``npm ci`` when
``node_modules/`` is missing, then ``npm run build``, which writes
``src/promptstate/widgets/static/``. That folder is git-ignored and shipped through the
wheel target's ``artifacts``. Without npm, prebuilt files in it are used as they are
(for example a wheel built from an unpacked sdist that already had them); with neither,
the build stops and says what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

STATIC = Path("src", "promptstate", "widgets", "static")
BUNDLES = ("widget.js", "devtools.js", "history.js", "sweep.js", "widget.css", "panels.css")


class FrontEndBuildHook(BuildHookInterface):
    """Run the npm build of ``js/`` so the wheel carries the bundled widgets."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":  # the sdist ships the sources, not the bundle
            return
        root = Path(self.root)
        static = root / STATIC
        prebuilt = all((static / name).is_file() for name in BUNDLES)
        npm = shutil.which("npm")
        if npm is None:
            if prebuilt:
                self.app.display_warning(
                    f"npm not found: using the prebuilt widget front end in {STATIC}"
                )
                return
            raise RuntimeError(
                "promptstate: building the widget front end needs Node.js (>= 18) and npm, "
                "and `npm` is not on PATH. Install Node.js (e.g. `apt-get install nodejs "
                f"npm`), or put a prebuilt bundle (`npm run build`) in {STATIC}/, then "
                "build again."
            )
        if _needs_install(root):
            self._npm(npm, root, "ci", "--no-audit", "--no-fund")
        self._npm(npm, root, "run", "build")
        missing = [name for name in BUNDLES if not (static / name).is_file()]
        if missing:
            raise RuntimeError(f"promptstate: `npm run build` did not write {missing} in {STATIC}")

    def _npm(self, npm: str, root: Path, *args: str) -> None:
        self.app.display_info(f"promptstate front end: npm {' '.join(args)}")
        # npm's own update check would reach for the network on every build.
        env = {**os.environ, "NO_UPDATE_NOTIFIER": "1", "npm_config_update_notifier": "false"}
        try:
            subprocess.run([npm, *args], cwd=root, env=env, check=True)
        except subprocess.CalledProcessError as exc:
            raise RuntimeError(
                f"promptstate: `npm {' '.join(args)}` failed (exit {exc.returncode}) while "
                "building the widget front end; see its output above."
            ) from exc


def _needs_install(root: Path) -> bool:
    """No node_modules yet, or package-lock.json changed after the last install."""
    installed = root / "node_modules" / ".package-lock.json"  # npm writes it on install
    if not installed.is_file():
        return True
    return (root / "package-lock.json").stat().st_mtime > installed.stat().st_mtime
