"""The promptstate command line, built on the public API only.

Subcommands: ``demo`` (an offline demo into a DuckDB file), ``runs`` (query a run log in
read-only SQL), ``run`` (send one prompt from a file), ``sweep`` (a prompt over rows of
variables and several models) and ``prompts list``. ``--db`` defaults to
``$PROMPTSTATE_DB``, else ``./promptstate.duckdb``.

Exit codes: 0 success, 1 a run or query failed, 2 a usage error (bad arguments, an
unknown variable or provider, a missing API key, an invalid prompt file). Errors print
one line, ``error: <message>``, and warnings one line, ``warning: <message>``.
"""

from promptstate.cli._common import CLIUsageError
from promptstate.cli._main import main

__all__ = ["CLIUsageError", "main"]
