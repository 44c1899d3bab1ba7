"""The built front end each widget serves: ``static/<name>`` next to this module.

``js/build.mjs`` (``npm run build``) bundles ``js/src/`` with esbuild into
``promptstate/widgets/static/``: one self-contained ES module per widget and one
stylesheet per family, the shared helpers and theme bundled in. The hatch build hook
(``hatch_build.py``) runs it for ``pip install -e .`` and for wheels; the bundle is never
committed. Widgets set ``_esm``/``_css`` to these paths and anywidget reads the files;
with ``ANYWIDGET_HMR=1`` (and ``watchfiles`` installed) an editable install also pushes
every rebuild (``npm run watch``) to the open widgets.
"""

from __future__ import annotations

import logging
from functools import cache
from pathlib import Path

__all__ = ["STATIC_DIR", "asset", "module", "stylesheet"]

_log = logging.getLogger("promptstate")

STATIC_DIR = Path(__file__).resolve().parent / "static"

# A source checkout (an editable install) has the sources beside the bundle.
_SOURCES = STATIC_DIR.parents[3] / "js" / "src"


def asset(name: str) -> Path:
    """One built front-end file by name (``widget.js``, ``panels.css``...).

    Raises
    ------
    FileNotFoundError
        When the front end was never built, with the command that builds it.
    """
    path = STATIC_DIR / name
    if not path.is_file():
        raise FileNotFoundError(
            f"promptstate's widget front end is not built: {path} is missing. "
            "In a source checkout run `npm ci && npm run build` (or `pip install -e .`, "
            "whose build hook runs them); a wheel of promptstate always ships it."
        )
    _warn_if_stale()
    return path


def module(name: str) -> Path:
    """The bundled ES module a widget serves as ``_esm`` (``widget.js``, ``devtools.js``...)."""
    return asset(name)


def stylesheet(name: str) -> Path:
    """The bundled stylesheet a widget serves as ``_css`` (``widget.css``, ``panels.css``)."""
    return asset(name)


@cache
def _warn_if_stale() -> None:
    # In a checkout, a source edited after the last build would silently not show.
    # js/build.mjs touches the static/ folder on every build (it leaves unchanged
    # bundles alone, so their own times say nothing).
    if not _SOURCES.is_dir():
        return
    built = STATIC_DIR.stat().st_mtime
    newer = sorted(
        str(p.relative_to(_SOURCES))
        for p in _SOURCES.rglob("*")
        if p.is_file() and p.stat().st_mtime > built
    )
    if newer:
        _log.warning(
            "%d file(s) in js/src/ changed after the widget front end was built (%s): "
            "run `npm run build` (or keep `npm run watch` running) to rebuild %s",
            len(newer),
            ", ".join(newer[:3]),
            STATIC_DIR,
        )
