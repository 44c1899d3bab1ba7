"""Where the front-end files are: shipped in the wheel, or in the checkout's ``js/``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CSS", "ESM", "asset", "asset_dir"]


def asset_dir() -> Path:
    """The directory holding ``widget.js`` and ``widget.css``.

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


ESM = asset_dir() / "widget.js"
CSS = asset_dir() / "widget.css"


def asset(name: str) -> Path:
    """One front-end file by name (``devtools.js``, ``panels.css``...), checked to exist."""
    path = asset_dir() / name
    if not path.is_file():
        raise FileNotFoundError(f"promptstate widget asset {name!r} not found in {path.parent}")
    return path
