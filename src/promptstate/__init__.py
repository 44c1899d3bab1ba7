"""promptstate: run LLM prompts from Jupyter without stale state; every run in DuckDB.

Quick use::

    import promptstate as ps
    session = ps.Session(db="runs.duckdb")
    session.prompts.register(ps.Prompt(id="hi", messages=[ps.user("Hello {{name}}")]))
    inst = session.start("hi", variables={"name": "Ada"})
    run = await inst.send()
    session.runs.sql("SELECT prompt_id, status FROM runs").df()

``ps.widgets`` and ``ps.providers`` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptstate.core.selectors import MergedVariables, VariableValue
from promptstate.core.state import Action, ChatMessage
from promptstate.engine.execute import RunResult
from promptstate.errors import (
    InstanceBusyError,
    InvalidPromptError,
    MissingVariablesError,
    PromptFileError,
    PromptStateError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
    ReadOnlyQueryError,
    RunLogError,
    RunLogLockedError,
    StateImportError,
    TemplateError,
    UnknownInstanceError,
    UnknownPromptError,
    UnknownProviderError,
    UnknownRunError,
    UnusedVariableWarning,
    VariableError,
)
from promptstate.models.prompt import Message, Prompt, assistant, system, user
from promptstate.models.template import escape, render
from promptstate.session.session import Instance, Session

if TYPE_CHECKING:
    from . import providers, widgets

__version__ = "0.1.0"

__all__ = [
    "Action",
    "ChatMessage",
    "Instance",
    "InstanceBusyError",
    "InvalidPromptError",
    "MergedVariables",
    "Message",
    "MissingVariablesError",
    "Prompt",
    "PromptFileError",
    "PromptStateError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "ReadOnlyQueryError",
    "RunLogError",
    "RunLogLockedError",
    "RunResult",
    "Session",
    "StateImportError",
    "TemplateError",
    "UnknownInstanceError",
    "UnknownPromptError",
    "UnknownProviderError",
    "UnknownRunError",
    "UnusedVariableWarning",
    "VariableError",
    "VariableValue",
    "__version__",
    "assistant",
    "escape",
    "providers",
    "render",
    "system",
    "user",
    "widgets",
]

_LAZY = {"widgets", "providers"}


def __getattr__(name: str) -> Any:
    # widgets pull in ipywidgets/anywidget; load them only when used
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'promptstate' has no attribute {name!r}")
