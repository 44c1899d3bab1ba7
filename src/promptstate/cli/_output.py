"""Terminal, CSV and JSON output of query results."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    pass

from promptstate.cli._common import _MAX_COL, _MIN_COL

__all__: list[str] = []

# -- output ----------------------------------------------------------------------------------


def _model_label(provider: str | None, model: str) -> str:
    """``provider:model`` as the user writes it (``echo`` alone for echo)."""
    return model if not provider or provider == model else f"{provider}:{model}"


def _num(value: float) -> str:
    """A float for people: 556.199938 -> 556.2, 0.000123456 -> 0.000123."""
    if not math.isfinite(value) or value == 0 or abs(value) >= 1:
        return f"{value:.1f}" if math.isfinite(value) and value != 0 else str(value)
    return f"{value:.3g}"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return _num(value)
    text = str(value)
    return text.replace("\r\n", "\\n").replace("\n", "\\n").replace("\t", " ")


def _fit(natural: list[int], width: int) -> list[int]:
    """Column widths that fit ``width``: narrow columns keep theirs, wide ones share the rest.

    Columns are placed narrowest first; each keeps its natural width while that still
    leaves the columns after it ``_MIN_COL`` characters each.
    """
    widths = list(natural)
    avail = width - 2 * (len(natural) - 1)
    order = sorted(range(len(natural)), key=lambda i: natural[i])
    for k, i in enumerate(order):
        left = len(order) - k - 1
        if natural[i] + _MIN_COL * left <= avail:
            widths[i] = natural[i]
        else:
            widths[i] = min(natural[i], max(3, avail // (left + 1)))
        avail -= widths[i]
    return widths


def _table(columns: Sequence[str], rows: Iterable[Sequence[Any]], width: int | None = None) -> str:
    """A plain-text table truncated to the terminal width."""
    cells = [[_cell(v) for v in r] for r in rows]
    natural = [
        min(_MAX_COL, max([len(c), *(len(r[i]) for r in cells)])) for i, c in enumerate(columns)
    ]
    widths = _fit(natural, width or shutil.get_terminal_size((100, 24)).columns)

    def line(vals: Sequence[str]) -> str:
        return "  ".join(
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
            for v, w in zip(vals, widths, strict=True)
        ).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *map(line, cells)])


def _plain(value: Any) -> Any:
    """A JSON/CSV-ready value: floats and ints stay numbers, everything else text."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _round_durations(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[list[Any]]:
    """Durations (``*_ms`` columns) to 0.1 ms in every format: 556.199938 reads as 556.2."""
    timed = [c.endswith("_ms") for c in columns]
    return [
        [round(v, 1) if t and isinstance(v, float) else v for v, t in zip(r, timed, strict=True)]
        for r in rows
    ]


def _render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    rows = _round_durations(columns, rows)
    if fmt == "json":
        records = [{c: _plain(v) for c, v in zip(columns, r, strict=True)} for r in rows]
        return json.dumps(records, indent=2, ensure_ascii=False)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_plain(v) for v in r] for r in rows])
        return buf.getvalue().rstrip("\n")
    return _table(columns, rows)


def _rows_note(shown: int, total: int) -> str:
    if shown == total:
        return f"({total} row{'s' if total != 1 else ''})"
    return f"({shown} of {total} rows; --limit N shows more, --csv or --json all)"
