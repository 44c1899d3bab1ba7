"""The subcommands: demo, runs, run, sweep, prompts, eval, push."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptstate.errors import (
    VariableError,
)

if TYPE_CHECKING:
    pass

from promptstate.cli._common import (
    _DEFAULT_RUNS_SQL,
    _MODEL_SQL,
    _TABLE_LIMIT,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CLIUsageError,
    _check_model,
    _default_db,
    _existing_db,
    _first_line,
    _load_one,
    _unknown_variable,
)
from promptstate.cli._output import _render, _rows_note, _table

__all__: list[str] = []

# -- demo -------------------------------------------------------------------------------------


async def _demo(args: argparse.Namespace) -> int:
    import promptstate as ps

    db = args.db
    async with ps.Session(db=db, user_id="demo-user", project_id="demo") as session:
        session.set_scoped_variable("user", "user_name", "Ada")
        session.set_scoped_variable("project", "tone", "plain")
        session.prompts.register(
            ps.Prompt(
                id="summarize",
                messages=[
                    ps.system("You are terse. Tone: {{tone}}."),
                    ps.user("Summarize for {{user_name}}: {{text}}"),
                ],
                variables={"text": "", "tone": "friendly"},
                settings={"echo_delay": 0.002},
            )
        )
        texts = [
            "DuckDB is an in-process analytical database.",
            "Redux keeps one immutable state tree and pure reducers.",
            "Server-sent events stream tokens over plain HTTP.",
            "A stale closure sends yesterday's value.",
        ]
        instances = [session.start("summarize", variables={"text": t}) for t in texts]
        instances[0].set_variable("text", texts[0] + " It runs inside the notebook.")
        runs = await asyncio.gather(*(i.send() for i in instances))
        runs.append(await instances[1].send("Shorter, please."))
        # only this demo's rows: the file may hold earlier demos' runs too
        mine = session.runs.sql(
            f"SELECT prompt_id, {_MODEL_SQL} AS model, status, count(*) AS runs, "
            "round(avg(latency_ms), 1) AS avg_latency_ms, sum(output_tokens) AS output_tokens "
            "FROM runs WHERE session_id = ? GROUP BY ALL ORDER BY prompt_id, status",
            [session.id],
        )
        table = _table([d[0] for d in mine.description], mine.fetchall())
        total = session.runs.count()
    ok = sum(r.status == "success" for r in runs)
    path = os.path.abspath(db)
    earlier = total - len(runs)
    lines = [
        f"ran {len(runs)} sends on the offline echo provider ({ok} succeeded)",
        f"first reply: {runs[0].response!r}",
        "",
        table,
        "",
        f"run log: {path} ({total} runs"
        + (f", {earlier} from earlier sessions)" if earlier else ")"),
        f"try: promptstate runs --db {shlex.quote(path)}",
    ]
    print("\n".join(lines))
    return EXIT_OK if ok == len(runs) else EXIT_FAILED


# -- runs -------------------------------------------------------------------------------------


def _runs(args: argparse.Namespace) -> int:
    import promptstate as ps

    db = _existing_db(args.db)
    query = args.sql or _DEFAULT_RUNS_SQL
    with ps.Session(db=db) as session:
        try:
            rel = session.runs.sql(query, read_only=not args.write)
        except ps.ReadOnlyQueryError as exc:
            raise ps.ReadOnlyQueryError(
                f"{exc} (`promptstate runs` is read-only; pass --write to change the log)"
            ) from None
        if rel is None:
            print("OK")
            return EXIT_OK
        columns = [d[0] for d in rel.description]
        total = int(rel.shape[0])
        limit = (
            args.limit
            if args.limit is not None
            else (_TABLE_LIMIT if args.format == "table" else total)
        )
        rows = rel.limit(limit).fetchall() if limit < total else rel.fetchall()
    print(_render(columns, rows, args.format))
    if args.format == "table":
        print(_rows_note(len(rows), total))
    return EXIT_OK


# -- run --------------------------------------------------------------------------------------


def _parse_vars(items: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise VariableError(f"--var expects NAME=VALUE, got {item!r}")
        out[name] = value
    return out


async def _run(args: argparse.Namespace) -> int:
    import promptstate as ps

    async with ps.Session(db=args.db or _default_db()) as session:
        prompt = _load_one(session, args.prompt_file, args.prompt)
        values = _parse_vars(args.var)
        for name in values:
            if name not in prompt.used_variables:
                raise CLIUsageError(_unknown_variable(prompt, name, f"--var {name}=..."))
        missing = sorted(
            n for n in prompt.used_variables if n not in values and prompt.variables.get(n) is None
        )
        if missing:
            raise CLIUsageError(
                f"prompt {prompt.id!r} needs a value for {', '.join(missing)}: pass "
                + " ".join(f"--var {n}=..." for n in missing)
            )
        model = args.model or prompt.model
        _check_model(session, model)
        inst = session.start(prompt.id, variables=values, model=args.model)
        printed = 0

        def stream_out() -> None:
            nonlocal printed
            last = inst.last_run
            if last is not None and len(last.response) > printed:
                sys.stdout.write(last.response[printed:])
                sys.stdout.flush()
                printed = len(last.response)

        unsubscribe = session.store.subscribe(stream_out) if args.stream else None
        try:
            run = await inst.send()
        finally:
            if unsubscribe is not None:
                unsubscribe()
        if args.stream:
            stream_out()
            sys.stdout.write("\n" if printed else "")
        else:
            sys.stdout.write(run.response + "\n")
        if run.status != "success":
            raise ps.ProviderError(f"run {run.run_id} ended {run.status}: {run.error}")
    return EXIT_OK


# -- prompts ----------------------------------------------------------------------------------


def _prompts(args: argparse.Namespace) -> int:
    import promptstate as ps

    db = args.db or _default_db()
    if not os.path.exists(db):
        if args.db is not None or not args.dir:
            raise CLIUsageError(
                f"no run log at {db!r} and no --dir: prompts live in prompt files "
                "(--dir examples/prompts/) or in a run log (--db FILE or $PROMPTSTATE_DB)"
            )
        db_path = None
    else:
        db_path = db
    with ps.Session(db=db_path) as session:
        from_files = {p.id for p in session.prompts.load(args.dir)} if args.dir else set()
        rows = []
        for pid in session.prompts.ids():
            p = session.prompts.get(pid)
            rows.append(
                [
                    p.id,
                    p.version,
                    p.model,
                    ", ".join(sorted(p.used_variables)),
                    "file" if pid in from_files else "db",
                    p.description,
                ]
            )
    if not rows and args.format == "table":
        where = " and ".join(
            ([f"{args.dir}"] if args.dir else []) + ([f"the run log {db!r}"] if db_path else [])
        )
        print(
            f"no prompts in {where}; add prompt files (see docs/prompt-files.md) and pass "
            "--dir, or save prompts into the log with session.prompts.save(prompt)"
        )
        return EXIT_OK
    cols = ["prompt_id", "version", "model", "variables", "source", "description"]
    print(_render(cols, rows, args.format))
    return EXIT_OK


# -- eval -------------------------------------------------------------------------------------


async def _eval(args: argparse.Namespace) -> int:
    import promptstate as ps
    from promptstate.evals.evalfile import load_eval_file, run_eval_command

    try:
        spec = load_eval_file(args.eval_file)  # validated before anything is opened
        async with ps.Session(db=args.db or _default_db()) as session:
            for m in spec.models or []:
                _check_model(session, m)
            return await run_eval_command(session, spec, args.junit, args.json)
    except ps.EvalFileError as exc:
        print(f"error: {_first_line(exc)}", file=sys.stderr)
        return EXIT_USAGE


# -- push -------------------------------------------------------------------------------------


def _push(args: argparse.Namespace) -> int:
    import promptstate as ps

    if not str(args.target).startswith(("postgresql://", "postgres://")):
        raise CLIUsageError(f"--to must be a postgresql:// URL, not {args.target!r}")
    added = ps.push_run_log(args.source, args.target)
    total = sum(added.values())
    detail = ", ".join(f"{table} {n}" for table, n in sorted(added.items()))
    print(f"pushed {total} new row(s) ({detail})" if total else "0 new rows: already pushed")
    return EXIT_OK
