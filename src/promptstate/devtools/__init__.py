"""Devtools: the action history, time travel, export and import."""

from promptstate.devtools.recorder import ActionRecord, DevTools, HistoryIndexError

__all__ = ["ActionRecord", "DevTools", "HistoryIndexError"]
