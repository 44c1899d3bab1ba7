"""The entry point: dispatch, one-line errors and warnings, exit codes."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from promptstate.errors import (
    PromptStateError,
)

if TYPE_CHECKING:
    pass

from promptstate.cli._commands import _demo, _eval, _prompts, _push, _run, _runs
from promptstate.cli._common import (
    _USAGE_ERRORS,
    EXIT_FAILED,
    EXIT_USAGE,
    CLIUsageError,
    _first_line,
)
from promptstate.cli._parser import _parser
from promptstate.cli._sweep import _sweep

__all__ = ["main"]

# -- entry point ------------------------------------------------------------------------------


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    # one line, no source excerpt: this is a command line, not a traceback
    print(f"warning: {str(message).splitlines()[0]}", file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "demo":
        return asyncio.run(_demo(args))
    if args.command == "runs":
        return _runs(args)
    if args.command == "prompts":
        return _prompts(args)
    if args.command == "push":
        return _push(args)
    if args.command == "run":
        return asyncio.run(_run(args))
    if args.command == "eval":
        return asyncio.run(_eval(args))
    return asyncio.run(_sweep(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``promptstate`` command; returns the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 ok, 1 a run or query failed, 2 a usage error.
    """
    args = _parser().parse_args(argv)
    with warnings.catch_warnings():
        if not sys.warnoptions:
            warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            return _dispatch(args)
        except (CLIUsageError, *_USAGE_ERRORS) as exc:
            print(f"error: {_first_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
        except PromptStateError as exc:
            print(f"error: {_first_line(exc)}", file=sys.stderr)
            return EXIT_FAILED
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            # the reader (e.g. `| head`) left; stop quietly, as other CLI tools do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_FAILED
