"""promptstate: run LLM prompts from Jupyter without stale state; every run in DuckDB.

Quick use::

    import promptstate as ps
    session = ps.Session(db="runs.duckdb")
    session.prompts.register(ps.Prompt(id="hi", messages=[ps.user("Hello {{name}}")]))
    inst = session.start("hi", variables={"name": "Ada"})
    run = await inst.send()
    session.runs.sql("SELECT prompt_id, status FROM runs").df()

``ps.widgets``, ``ps.providers``, ``ps.link``, the evaluation API (``ps.Dataset``,
``ps.Eval``, ``ps.scorers``...) and ``ps.push_run_log`` are imported on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptstate._lazy import lazy_attributes as _lazy_attributes
from promptstate.core.actions import Action
from promptstate.errors import (
    DatasetError,
    EvalFileError,
    InstanceBusyError,
    InvalidPromptError,
    MissingVariablesError,
    PromptFileError,
    PromptStateError,
    ProviderConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
    ReadOnlyQueryError,
    RunFailedError,
    RunLogError,
    RunLogLockedError,
    ScorerError,
    StateImportError,
    TemplateError,
    UnknownEvalError,
    UnknownInstanceError,
    UnknownPromptError,
    UnknownProviderError,
    UnknownRunError,
    UnusedVariableWarning,
    VariableError,
)
from promptstate.models.prompt import Message, Prompt, assistant, system, user
from promptstate.models.run import RunResult
from promptstate.models.template import escape, render
from promptstate.models.values import ChatMessage, MergedVariables, VariableValue
from promptstate.session import Instance, Session
from promptstate.session import bindings as _bindings

if TYPE_CHECKING:
    from . import providers, widgets
    from .evals import Dataset, Eval, Score, scorers
    from .evals.compare import compare
    from .runlog.postgres import push_run_log
    from .widgets._link import Link, link

from promptstate._version import __version__

__all__ = [
    "Action",
    "ChatMessage",
    "Dataset",
    "DatasetError",
    "Eval",
    "EvalFileError",
    "Instance",
    "InstanceBusyError",
    "InvalidPromptError",
    "Link",
    "MergedVariables",
    "Message",
    "MissingVariablesError",
    "Prompt",
    "PromptFileError",
    "PromptStateError",
    "ProviderConfigError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "ReadOnlyQueryError",
    "RunFailedError",
    "RunLogError",
    "RunLogLockedError",
    "RunResult",
    "Score",
    "ScorerError",
    "Session",
    "StateImportError",
    "TemplateError",
    "UnknownEvalError",
    "UnknownInstanceError",
    "UnknownPromptError",
    "UnknownProviderError",
    "UnknownRunError",
    "UnusedVariableWarning",
    "VariableError",
    "VariableValue",
    "__version__",
    "assistant",
    "compare",
    "escape",
    "link",
    "providers",
    "push_run_log",
    "render",
    "scorers",
    "system",
    "user",
    "widgets",
]

_LAZY = {"widgets", "providers"}
# ps.link / ps.Link: two-way binding of any ipywidget, from the widgets layer; the
# evaluation API and the Postgres push (~120 ms of this import here) on first use too
_LAZY_NAMES = {
    "link": "widgets._link",
    "Link": "widgets._link",
    **dict.fromkeys(("Dataset", "Eval", "Score", "compare", "scorers"), "evals"),
    "push_run_log": "runlog.postgres",
}


def _link_hook(widget: Any, inst: Instance, name: str, **kwargs: Any) -> Any:
    # widgets pull in ipywidgets/anywidget: imported the first time a control is bound
    from promptstate.widgets._link import link

    return link(widget, inst, name, **kwargs)


def _view_hook(inst: Instance) -> Any:
    from promptstate.widgets import PromptRunner

    return PromptRunner(inst)


_bindings.install_widget_hooks(_link_hook, _view_hook)


_lazy_name = _lazy_attributes(__name__, _LAZY_NAMES)


def __getattr__(name: str) -> Any:
    # widgets pull in ipywidgets/anywidget; load them only when used
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    return _lazy_name(name)


def __dir__() -> list[str]:
    # tab completion (IPython falls back on dir()) lists the lazy names before first use
    return sorted(set(globals()) | set(__all__))
