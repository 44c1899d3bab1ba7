"""Constants and helpers every command shares."""

from __future__ import annotations

import argparse
import difflib
import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

from promptstate.errors import (
    InvalidPromptError,
    PromptFileError,
    PromptStateError,
    ProviderConfigError,
    TemplateError,
    UnknownPromptError,
    UnknownProviderError,
    VariableError,
)

if TYPE_CHECKING:
    import promptstate as ps


__all__ = ["DEMO_DB", "CLIUsageError"]

DEMO_DB = "promptstate-demo.duckdb"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_TABLE_LIMIT = 20  # rows a table shows unless --limit says otherwise
_MAX_COL = 100  # no column grows wider than this, even on a wide terminal
_MIN_COL = 10  # what a narrow terminal still leaves each wide column
# errors that mean "the command line or its input files are wrong", not "a run failed"
_USAGE_ERRORS = (
    VariableError,
    UnknownProviderError,
    UnknownPromptError,
    PromptFileError,
    InvalidPromptError,
    TemplateError,
    ProviderConfigError,
)
# the model column as users write it: "echo", "echo:b", "openai:gpt-4o-mini"
_MODEL_SQL = (
    "CASE WHEN provider IS NULL OR provider = model THEN model ELSE provider || ':' || model END"
)
_DEFAULT_RUNS_SQL = (
    "SELECT strftime(started_at, '%Y-%m-%d %H:%M:%S') AS started_at, prompt_id, "
    f"{_MODEL_SQL} AS model, status, round(latency_ms, 1) AS latency_ms, "
    "coalesce(nullif(response, ''), error, '') AS response "
    "FROM runs ORDER BY runs.started_at DESC, run_id"
)
# API-key providers built from environment variables when a model string names them
_KEY_PROVIDERS = {"openai": "OPENAI", "anthropic": "ANTHROPIC"}
# bare model names people type without a provider prefix, by the prefix they need
_MODEL_FAMILIES = {
    "openai": ("gpt", "o1", "o3", "o4", "chatgpt", "text-embedding", "davinci"),
    "anthropic": ("claude",),
}


class CLIUsageError(PromptStateError):
    """The command line is wrong in a way argparse cannot see (exit code 2)."""


# -- shared helpers ---------------------------------------------------------------------------


def _default_db() -> str:
    return os.environ.get("PROMPTSTATE_DB") or "promptstate.duckdb"


def _existing_db(db: str | None) -> str:
    path = db or _default_db()
    if not os.path.exists(path) and not path.startswith(("postgresql://", "postgres://")):
        raise CLIUsageError(
            f"no run log at {path!r}: pass --db FILE or set PROMPTSTATE_DB "
            "('promptstate demo' writes one to promptstate-demo.duckdb)"
        )
    return path


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _load_one(session: ps.Session, prompt_file: str, prompt_id: str | None) -> ps.Prompt:
    prompts = session.prompts.load(prompt_file)
    by_id = {p.id: p for p in prompts}
    if prompt_id is not None:
        if prompt_id not in by_id:
            raise PromptFileError(
                prompt_file,
                f"no prompt {prompt_id!r} in it{_suggest(prompt_id, by_id)} "
                f"(it holds: {', '.join(by_id)})",
            )
        return by_id[prompt_id]
    if len(prompts) != 1:
        raise PromptFileError(
            prompt_file, f"holds several prompts ({', '.join(by_id)}); pick one with --prompt"
        )
    return prompts[0]


def _unknown_variable(prompt: ps.Prompt, name: str, what: str) -> str:
    known = sorted(prompt.used_variables)
    hint = _suggest(name, known) or f" (its variables: {', '.join(known) or 'none'})"
    return f"prompt {prompt.id!r} has no variable {name!r} ({what}){hint}"


def _check_model(session: ps.Session, model: str) -> None:
    """Fail fast on a model string that cannot work, before anything is sent or logged."""
    provider, sep, rest = model.partition(":")
    known = [*session.providers.names(), *_KEY_PROVIDERS]
    if not sep and provider != "echo":
        family = next(
            (p for p, heads in _MODEL_FAMILIES.items() if model.lower().startswith(heads)), None
        )
        hint = (
            f"; did you mean '{family}:{model}'?"
            if family
            else " (e.g. 'openai:gpt-4o-mini', 'anthropic:claude-sonnet-4-5' or 'echo')"
        )
        raise CLIUsageError(
            f"unknown provider {provider!r}: model strings are '<provider>:<model>'{hint}"
        )
    if provider not in known:
        close = difflib.get_close_matches(provider, known, n=1)
        hint = f"; did you mean '{close[0]}:{rest}'?" if close else ""
        raise CLIUsageError(
            f"unknown provider {provider!r} in model {model!r}; known: "
            f"{', '.join(sorted(set(known)))}{hint}"
        )
    env = _KEY_PROVIDERS.get(provider)
    # a base URL without a key is a local OpenAI/Anthropic-compatible server
    if env and not os.environ.get(f"{env}_API_KEY") and not os.environ.get(f"{env}_BASE_URL"):
        raise CLIUsageError(
            f"{env}_API_KEY is not set: export {env}_API_KEY=... to use {model!r} "
            f"(or set {env}_BASE_URL to a compatible server that needs no key)"
        )


def _make_room(session: ps.Session, models: Iterable[str], concurrency: int) -> None:
    """Raise the API providers' own concurrency caps to ``concurrency`` where lower.

    ``--concurrency`` bounds the sweep; each provider also caps its calls (16 by
    default), which would otherwise silently hold a larger ``--concurrency`` back.
    """
    import promptstate as ps

    for name in sorted({m.partition(":")[0] for m in models} & set(_KEY_PROVIDERS)):
        if session.providers.get(name).max_concurrency < concurrency:
            cls = ps.providers.OpenAICompatible if name == "openai" else ps.providers.Anthropic
            session.providers.add(cls(max_concurrency=concurrency))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
