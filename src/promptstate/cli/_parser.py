"""The argument parser: every command and option with a one-line help."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from promptstate.cli._common import _TABLE_LIMIT, DEMO_DB, _positive_int

__all__: list[str] = []

# -- argument parsing -------------------------------------------------------------------------


def _add_output(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--format",
        choices=("table", "csv", "json"),
        default="table",
        help=f"how to print {what} (default: a table fitted to the terminal)",
    )
    p.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )
    p.add_argument(
        "--csv", dest="format", action="store_const", const="csv", help="same as --format csv"
    )


def _add_db(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument(
        "--db",
        default=default,
        metavar="FILE",
        help=f"DuckDB run log (default: {default})"
        if default
        else "DuckDB run log (default: $PROMPTSTATE_DB, else ./promptstate.duckdb)",
    )


def _parser() -> argparse.ArgumentParser:
    import promptstate as ps

    parser = argparse.ArgumentParser(
        prog="promptstate",
        description="Run LLM prompts and query every run in SQL (a DuckDB run log).",
        epilog="Exit codes: 0 ok, 1 a run or query failed, 2 a usage error. "
        "Run 'promptstate COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"promptstate {ps.__version__}")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of the commands below"
    )

    demo = sub.add_parser(
        "demo",
        help="run an offline demo (echo provider) into a DuckDB file",
        description="Send five prompts on the offline echo provider and summarize them.",
    )
    _add_db(demo, DEMO_DB)

    runs = sub.add_parser(
        "runs",
        help="query the run log in read-only SQL",
        description="Query the run log. Without SQL, show the latest runs. Queries are "
        "read-only unless --write is given.",
    )
    runs.add_argument(
        "sql",
        nargs="?",
        default=None,
        metavar="SQL",
        help="a SELECT over the runs/scores/... tables (default: the latest runs)",
    )
    _add_db(runs)
    _add_output(runs, "the rows")
    runs.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"print at most N rows (default: {_TABLE_LIMIT} in a table, all for csv/json)",
    )
    runs.add_argument(
        "--write",
        action="store_true",
        help="allow statements that change the log (DELETE, UPDATE, ...)",
    )

    run = sub.add_parser(
        "run",
        help="send one prompt from a YAML/JSON prompt file and print the reply",
        description="Send one prompt from a prompt file (see docs/prompt-files.md); "
        "the run is logged.",
    )
    run.add_argument("prompt_file", metavar="PROMPT_FILE", help="a .yaml/.yml/.json prompt file")
    run.add_argument(
        "--var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a variable value (repeatable)",
    )
    run.add_argument(
        "--model",
        default=None,
        help="model string, e.g. openai:gpt-4o-mini (default: the prompt's)",
    )
    run.add_argument(
        "--prompt", default=None, metavar="ID", help="prompt id when the file holds several"
    )
    run.add_argument("--stream", action="store_true", help="print the reply as it arrives")
    _add_db(run)

    sweep = sub.add_parser(
        "sweep",
        help="run a prompt over rows of variables and several models",
        description="Run a prompt for every row of a CSV/JSONL file on every model; "
        "prints each reply and a per-model summary.",
    )
    sweep.add_argument("prompt_file", metavar="PROMPT_FILE", help="a .yaml/.yml/.json prompt file")
    sweep.add_argument(
        "--vars",
        default=None,
        metavar="FILE",
        help="a .csv (header = variable names) or .jsonl file, one run per row",
    )
    sweep.add_argument(
        "--models",
        default=None,
        metavar="LIST",
        help="comma-separated model strings, e.g. echo,openai:gpt-4o-mini (default: the prompt's)",
    )
    sweep.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        metavar="N",
        help="runs in flight at once, API providers' caps raised to match (default: 8)",
    )
    sweep.add_argument(
        "--repeat",
        type=_positive_int,
        default=1,
        metavar="N",
        help="runs per row and model (default: 1)",
    )
    sweep.add_argument(
        "--prompt", default=None, metavar="ID", help="prompt id when the file holds several"
    )
    _add_output(sweep, "one row per run")
    sweep.add_argument(
        "--limit",
        type=_positive_int,
        default=None,
        metavar="N",
        help=f"rows of the reply table to print (default: {_TABLE_LIMIT})",
    )
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_db(sweep)

    prompts = sub.add_parser(
        "prompts",
        help="list the prompts of a directory and of the run log",
        description="List prompts from prompt files (--dir) and the run log's prompts table.",
    )
    prompts.add_argument("action", choices=("list",), help="what to do (only 'list')")
    prompts.add_argument(
        "--dir", default=None, metavar="PATH", help="a directory or file of YAML/JSON prompts"
    )
    _add_db(prompts)
    _add_output(prompts, "the prompts")

    ev = sub.add_parser(
        "eval",
        help="run an eval file (prompts x dataset x scorers) and check its thresholds",
        description="Run an eval file (see docs/evaluations.md); exit 1 when a threshold fails.",
    )
    ev.add_argument("eval_file", metavar="EVAL_FILE", help="a .yaml eval file")
    ev.add_argument("--junit", default=None, metavar="FILE", help="write a JUnit XML report")
    ev.add_argument("--json", default=None, metavar="FILE", help="write a JSON report")
    _add_db(ev)

    push = sub.add_parser(
        "push",
        help="copy a DuckDB run log into a team's Postgres log (idempotent)",
        description="Copy every run, prompt, scoped variable and evaluation row of a DuckDB "
        "file into a Postgres run log; rows already there are skipped, so pushing twice "
        "adds nothing. Needs the promptstate[postgres] extra.",
    )
    push.add_argument("--from", dest="source", required=True, metavar="FILE")
    push.add_argument("--to", dest="target", required=True, metavar="postgresql://...")
    return parser
