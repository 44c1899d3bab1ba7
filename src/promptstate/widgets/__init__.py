"""Notebook widgets bound to the store.

Every instance widget takes an instance handle and mirrors that instance's selectors;
user input dispatches actions. A widget never holds its own copy of a value the store
owns, so views of one instance always agree and Send always uses what is on screen::

    runner = ps.widgets.PromptRunner(inst)   # form + chat + composer
    ps.widgets.VariablesForm(inst)           # the parts on their own
    ps.widgets.ChatView(inst)
    ps.widgets.Composer(inst)

Session panels::

    ps.widgets.DevTools(session)             # action history, time travel, export/import
    ps.widgets.RunHistory(session)           # SQL over the run log, run detail, diff, re-run
    ps.widgets.SweepGrid(sweep)              # a sweep's replies, variable sets x models
"""

from __future__ import annotations

from promptstate.widgets._devtools_widget import DevTools
from promptstate.widgets._history_widget import RunHistory
from promptstate.widgets._sweep_widget import SweepGrid
from promptstate.widgets._widgets import ChatView, Composer, PromptRunner, VariablesForm

__all__ = [
    "ChatView",
    "Composer",
    "DevTools",
    "PromptRunner",
    "RunHistory",
    "SweepGrid",
    "VariablesForm",
]
