"""Where the front-end files are (shipped in the wheel, or the checkout's ``js/``), and
the module and stylesheet text each widget serves.

anywidget loads a module from one string, so modules cannot import each other: every
module is served as ``common.js`` (shared DOM helpers) followed by the widget's own file,
and every stylesheet as ``theme.css`` followed by the widget's own rules.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

__all__ = ["asset", "asset_dir", "module", "stylesheet"]


@cache
def asset_dir() -> Path:
    """The directory holding the front-end files.

    The wheel maps the repository's ``js/`` to ``promptstate/widgets/static/``; an
    editable install or ``PYTHONPATH=src`` has no ``static/``, so fall back to ``js/``.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "static", here.parents[2] / "js"):
        if (candidate / "widget.js").is_file():
            return candidate
    raise FileNotFoundError(
        f"promptstate widget assets not found in {here / 'static'} or the checkout's js/"
    )


def asset(name: str) -> Path:
    """One front-end file by name (``devtools.js``, ``panels.css``...), checked to exist."""
    path = asset_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"promptstate widget asset {name!r} not found in {path.parent}")
    return path


def module(name: str) -> str:
    """The ES module a widget serves: the shared helpers, then ``name``."""
    return (
        asset("common.js").read_text(encoding="utf-8")
        + "\n"
        + asset(name).read_text(encoding="utf-8")
    )


def stylesheet(name: str) -> str:
    """The stylesheet a widget serves: the shared theme, then ``name``."""
    return (
        asset("theme.css").read_text(encoding="utf-8")
        + "\n"
        + asset(name).read_text(encoding="utf-8")
    )
