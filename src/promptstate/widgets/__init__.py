"""Notebook widgets bound to the store.

Every widget takes an instance handle and mirrors that instance's selectors; user
input dispatches actions. A widget never holds its own copy of a value the store owns,
so views of one instance always agree and Send always uses what is on screen::

    runner = ps.widgets.PromptRunner(inst)   # form + chat + composer
    ps.widgets.VariablesForm(inst)           # the parts on their own
    ps.widgets.ChatView(inst)
    ps.widgets.Composer(inst)
"""

from __future__ import annotations

from ._widgets import ChatView, Composer, PromptRunner, VariablesForm

__all__ = ["ChatView", "Composer", "PromptRunner", "VariablesForm"]
