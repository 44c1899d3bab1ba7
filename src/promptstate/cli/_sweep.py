"""``promptstate sweep`` helpers: reading rows, checking columns, per-row records."""

from __future__ import annotations

import argparse
import csv
import difflib
import json
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promptstate.errors import (
    VariableError,
)

if TYPE_CHECKING:
    import promptstate as ps

from promptstate.cli._common import (
    _TABLE_LIMIT,
    EXIT_FAILED,
    EXIT_OK,
    CLIUsageError,
    _check_model,
    _default_db,
    _load_one,
    _make_room,
    _unknown_variable,
)
from promptstate.cli._output import _model_label, _render, _rows_note, _table

__all__: list[str] = []

# -- sweep ------------------------------------------------------------------------------------


def _read_rows(path: str) -> list[dict[str, object]]:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            if path.lower().endswith(".csv"):
                return [dict(r) for r in csv.DictReader(fh)]
            rows = []
            for n, line in enumerate(fh, 1):
                if line.strip():
                    obj = json.loads(line)
                    if not isinstance(obj, dict):
                        raise VariableError(f"{path}:{n}: each JSONL line must be an object")
                    rows.append(obj)
            return rows
    except OSError as exc:
        raise VariableError(f"cannot read {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise VariableError(f"{path}: not valid JSONL: {exc}") from None


def _check_columns(prompt: ps.Prompt, rows: list[dict[str, object]], source: str) -> None:
    """A column that looks like a typo of a variable no row gives is an error; others warn."""
    columns = list(dict.fromkeys(k for r in rows for k in r))
    used = prompt.used_variables
    not_given = sorted(used - set(columns))
    for col in columns:
        if col in used:
            continue
        if difflib.get_close_matches(col, not_given, n=1, cutoff=0.6):
            raise CLIUsageError(_unknown_variable(prompt, col, f"a column of {source}"))
        warnings.warn(
            f"column {col!r} of {source} is not used by prompt {prompt.id!r}",
            stacklevel=2,
        )


async def _sweep(args: argparse.Namespace) -> int:
    import promptstate as ps

    async with ps.Session(db=args.db or _default_db()) as session:
        prompt = _load_one(session, args.prompt_file, args.prompt)
        rows = _read_rows(args.vars) if args.vars else [{}]
        if not rows:
            raise VariableError(f"{args.vars} has no rows")
        _check_columns(prompt, rows, args.vars or "--vars")
        models = [m.strip() for m in (args.models or "").split(",") if m.strip()] or [prompt.model]
        for m in models:
            _check_model(session, m)
        _make_room(session, models, args.concurrency)
        with warnings.catch_warnings():
            # _check_columns already said it once; each cell would say it again
            warnings.simplefilter("ignore", ps.UnusedVariableWarning)
            sw = await session.sweep(
                prompt.id,
                rows,
                models=models,
                concurrency=args.concurrency,
                repeat=args.repeat,
                progress=not args.quiet,
            )
    names = list(sw.variable_names)
    records = [_cell_record(cell, names) for cell in sw.cells]
    head = f"sweep {sw.sweep_id}: {sw.done} runs, {sw.errors} errors" + (
        f", {sw.cancelled} cancelled" if sw.cancelled else ""
    )
    if args.format != "table":
        cols = [*names, *_SWEEP_COLUMNS]
        print(_render(cols, [[r[c] for c in cols] for r in records], args.format))
        print(head, file=sys.stderr)
    else:
        limit = args.limit if args.limit is not None else _TABLE_LIMIT
        cols = [*names, "model", "status", "latency_ms", "response"]
        shown = [[*(r[c] for c in cols[:-1]), r["response"] or r["error"]] for r in records[:limit]]
        db = shlex.quote(os.path.abspath(args.db or _default_db()))
        print(_table(cols, shown))
        print(_rows_note(len(shown), len(records)))
        print()
        print(_sweep_summary(records))
        print()
        print(head)
        # sweep ids are hex, so the double-quoted SQL needs no escaping
        sql = f"\"SELECT * FROM runs WHERE sweep_id = '{sw.sweep_id}'\""
        print(f"every column: promptstate runs {sql} --db {db}")
    return EXIT_FAILED if sw.errors or sw.cancelled else EXIT_OK


_SWEEP_COLUMNS = (
    "model",
    "status",
    "latency_ms",
    "response",
    "error",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "run_id",
)


def _cell_record(cell: Any, names: Sequence[str]) -> dict[str, Any]:
    """One sweep cell as a flat record; a cell that never sent has no run (and no run_id)."""
    r = cell.result
    rec: dict[str, Any] = {n: cell.variables.get(n) for n in names}
    rec.update(
        model=cell.model if r is None else _model_label(r.provider, r.model),
        status=cell.status,
        latency_ms=None if r is None or r.latency_ms is None else round(r.latency_ms, 1),
        response="" if r is None else r.response,
        error=cell.error if r is None else r.error,
        input_tokens=None if r is None else r.input_tokens,
        output_tokens=None if r is None else r.output_tokens,
        cost_usd=None if r is None else r.cost_usd,
        run_id=None if r is None else r.run_id,
    )
    return rec


def _sweep_summary(records: list[dict[str, Any]]) -> str:
    """Per model: runs, successes, errors, mean latency, output tokens, cost."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault(r["model"], []).append(r)

    def total(rs: list[dict[str, Any]], key: str) -> Any:
        vals = [r[key] for r in rs if r[key] is not None]
        return sum(vals) if vals else None

    rows = []
    for model, rs in groups.items():
        lat = [r["latency_ms"] for r in rs if r["latency_ms"] is not None]
        rows.append(
            [
                model,
                len(rs),
                sum(r["status"] == "success" for r in rs),
                sum(r["status"] == "error" for r in rs),
                round(sum(lat) / len(lat), 1) if lat else None,
                total(rs, "output_tokens"),
                total(rs, "cost_usd"),
            ]
        )
    cols = ["model", "runs", "success", "errors", "avg_latency_ms", "output_tokens", "cost_usd"]
    return _table(cols, rows)
