"""The ``promptstate`` command line.

``promptstate demo`` runs an offline demo into a DuckDB file and prints a summary;
``promptstate run FILE --var k=v`` sends one prompt; ``promptstate sweep FILE --vars
data.csv --models a,b`` runs a sweep; ``promptstate runs "SQL"`` queries a run log;
``promptstate prompts list`` lists the prompts a directory and the DB know. ``--db``
defaults to ``$PROMPTSTATE_DB``, else ``./promptstate.duckdb``. Errors exit non-zero with
one clear line.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

DEMO_DB = "promptstate-demo.duckdb"


def _default_db() -> str:
    return os.environ.get("PROMPTSTATE_DB", "promptstate.duckdb")


def _format_rows(columns: list[str], rows: list[tuple[Any, ...]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([dict(zip(columns, r, strict=True)) for r in rows], default=str, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(columns)
        w.writerows(rows)
        return buf.getvalue().rstrip("\n")
    cells = [[("" if v is None else str(v)).replace("\n", "\\n") for v in r] for r in rows]
    widths = [len(c) for c in columns]
    for r in cells:
        widths = [min(max(w, len(v)), 60) for w, v in zip(widths, r, strict=True)]

    def line(vals: Sequence[str]) -> str:
        return "  ".join(
            (v if len(v) <= w else v[: w - 1] + "…").ljust(w)
            for v, w in zip(vals, widths, strict=True)
        ).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    out.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(out)


def _query(db: str, sql: str, fmt: str) -> str:
    import promptstate as ps

    if not os.path.exists(db):
        raise ps.RunLogError(f"no run log at {db!r} (run `promptstate demo` or pass --db)")
    with ps.Session(db=db) as session:
        rel = session.runs.sql(sql)
        if rel is None:
            return "OK"
        columns = [d[0] for d in rel.description]
        return _format_rows(columns, rel.fetchall(), fmt)


async def _demo(db: str) -> str:
    import promptstate as ps

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
        follow = await instances[1].send("Shorter, please.")
        summary = session.runs.sql(
            "SELECT prompt_id, model, status, count(*) AS runs, "
            "round(avg(latency_ms), 2) AS avg_latency_ms, sum(output_tokens) AS output_tokens "
            "FROM runs GROUP BY ALL ORDER BY prompt_id, status"
        )
        cols = [d[0] for d in summary.description]
        table = _format_rows(cols, summary.fetchall(), "table")
    ok = sum(r.status == "success" for r in [*runs, follow])
    return (
        f"ran {len(runs) + 1} sends on the offline echo provider ({ok} succeeded)\n"
        f"first reply: {runs[0].response!r}\n\n{table}\n\n"
        f'run log: {os.path.abspath(db)}  (try: promptstate runs "SELECT * FROM runs" --db {db})'
    )


def _prompts_list(db: str, directory: str | None) -> str:
    import promptstate as ps

    session = ps.Session(db=db if os.path.exists(db) else None)
    try:
        if directory:
            session.prompts.load(directory)
        rows = []
        for pid in session.prompts.ids():
            p = session.prompts.get(pid)
            rows.append((p.id, p.version, p.model, ", ".join(sorted(p.used_variables))))
        return _format_rows(["prompt_id", "version", "model", "variables"], rows, "table")
    finally:
        session.close()


def _load_one(session: Any, prompt_file: str, prompt_id: str | None) -> str:
    from promptstate.errors import PromptFileError

    prompts = session.prompts.load(prompt_file)
    if prompt_id is not None:
        if prompt_id not in {p.id for p in prompts}:
            raise PromptFileError(prompt_file, f"no prompt {prompt_id!r} in it")
        return prompt_id
    if len(prompts) != 1:
        ids = ", ".join(p.id for p in prompts)
        raise PromptFileError(prompt_file, f"holds several prompts ({ids}); pick one with --prompt")
    return str(prompts[0].id)


def _parse_vars(items: Sequence[str]) -> dict[str, str]:
    from promptstate.errors import VariableError

    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise VariableError(f"--var expects NAME=VALUE, got {item!r}")
        out[name] = value
    return out


async def _run(args: argparse.Namespace) -> tuple[str, int]:
    import promptstate as ps

    async with ps.Session(db=args.db or _default_db()) as session:
        pid = _load_one(session, args.prompt_file, args.prompt)
        inst = session.start(pid, variables=_parse_vars(args.var), model=args.model)
        printed = [0]

        def stream_out() -> None:
            last = inst.last_run
            if last is not None and len(last.response) > printed[0]:
                sys.stdout.write(last.response[printed[0] :])
                sys.stdout.flush()
                printed[0] = len(last.response)

        unsub = session.store.subscribe(stream_out) if args.stream else None
        run = await inst.send()
        if unsub is not None:
            unsub()
            stream_out()
            text = "\n" if printed[0] else ""
        else:
            text = run.response + "\n"
        if run.status != "success":
            raise ps.ProviderError(f"run {run.run_id} ended {run.status}: {run.error}")
        return text, 0


def _read_rows(path: str) -> list[dict[str, object]]:
    from promptstate.errors import VariableError

    try:
        with open(path, encoding="utf-8", newline="") as fh:
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


async def _sweep(args: argparse.Namespace) -> tuple[str, int]:
    import promptstate as ps

    async with ps.Session(db=args.db or _default_db()) as session:
        pid = _load_one(session, args.prompt_file, args.prompt)
        rows = _read_rows(args.vars) if args.vars else [{}]
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        sw = await session.sweep(
            pid,
            rows,
            models=models,
            concurrency=args.concurrency,
            repeat=args.repeat,
            progress=not args.quiet,
        )
        summary = session.runs.sql(
            "SELECT provider || ':' || model AS model, status, count(*) AS runs, "
            "round(avg(latency_ms), 1) AS avg_latency_ms, sum(input_tokens) AS input_tokens, "
            "sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd "
            "FROM runs WHERE sweep_id = ? GROUP BY ALL ORDER BY 1, 2",
            [sw.sweep_id],
        )
        cols = [d[0] for d in summary.description]
        text = _format_rows(cols, summary.fetchall(), args.format)
        return f"sweep_id {sw.sweep_id}: {sw.done} runs, {sw.errors} errors\n{text}", (
            1 if sw.errors else 0
        )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="promptstate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run an offline demo into a DuckDB file")
    demo.add_argument("--db", default=DEMO_DB)
    runs = sub.add_parser("runs", help="query the run log in SQL")
    runs.add_argument(
        "sql",
        nargs="?",
        default="SELECT run_id, prompt_id, model, status, "
        "latency_ms, started_at FROM runs ORDER BY started_at DESC LIMIT 20",
    )
    runs.add_argument("--db", default=None)
    runs.add_argument("--format", choices=("table", "csv", "json"), default="table")
    run = sub.add_parser("run", help="send one prompt from a YAML/JSON file")
    run.add_argument("prompt_file")
    run.add_argument("--var", action="append", default=[], metavar="NAME=VALUE")
    run.add_argument(
        "--model", default=None, help='e.g. "openai:gpt-4o-mini" (default: the prompt\'s)'
    )
    run.add_argument("--prompt", default=None, help="prompt id when the file holds several")
    run.add_argument("--stream", action="store_true", help="print the reply as it arrives")
    run.add_argument("--db", default=None)
    sweep = sub.add_parser("sweep", help="run a prompt over rows of variables and models")
    sweep.add_argument("prompt_file")
    sweep.add_argument(
        "--vars", default=None, help="a .csv (header = variable names) or .jsonl file"
    )
    sweep.add_argument("--models", default=None, help="comma-separated model strings")
    sweep.add_argument("--concurrency", type=int, default=8)
    sweep.add_argument("--repeat", type=int, default=1)
    sweep.add_argument("--prompt", default=None)
    sweep.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.add_argument("--db", default=None)
    prompts = sub.add_parser("prompts", help="list prompts")
    prompts.add_argument("action", choices=("list",))
    prompts.add_argument("--dir", default=None, help="a directory or file of YAML/JSON prompts")
    prompts.add_argument("--db", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``promptstate`` command; returns the exit code."""
    args = _parser().parse_args(argv)
    from promptstate.errors import PromptStateError

    try:
        if args.command == "demo":
            print(asyncio.run(_demo(args.db)))
        elif args.command == "runs":
            print(_query(args.db or _default_db(), args.sql, args.format))
        elif args.command == "prompts":
            print(_prompts_list(args.db or _default_db(), args.dir))
        elif args.command in ("run", "sweep"):
            text, code = asyncio.run(_run(args) if args.command == "run" else _sweep(args))
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
            return code
    except PromptStateError as exc:
        print(f"promptstate: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except ValueError as exc:  # e.g. --concurrency 0
        print(f"promptstate: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
