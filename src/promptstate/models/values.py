"""Public value types shared by every layer: chat messages and merged variables."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["SOURCES", "ChatMessage", "MergedVariables", "VariableValue"]

# lowest to highest precedence
SOURCES = ("default", "org", "project", "user", "instance")


@dataclass(frozen=True)
class ChatMessage:
    """A message as sent or received: rendered text, never a template.

    ``run_id`` names the run that sent (user/system turns) or produced (assistant turns)
    it; ``status`` is set only on messages shown in a chat view that are not part of the
    conversation: ``"preview"`` (the next request, rendered from the live variables),
    ``"streaming"`` (a reply in flight), ``"cancelled"`` or ``"error"`` (a reply that
    did not complete; its partial text is kept).
    """

    role: str
    content: str
    run_id: str | None = None
    status: str | None = None


class VariableValue(NamedTuple):
    """A merged variable value and the layer that supplied it (``"missing"`` if none)."""

    value: str | None
    source: str


class MergedVariables(Mapping[str, VariableValue]):
    """Read-only mapping ``name -> VariableValue(value, source)`` in prompt order."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, VariableValue]) -> None:
        self._items = items

    def __getitem__(self, key: str) -> VariableValue:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def with_values(self, values: Mapping[str, str], source: str = "instance") -> MergedVariables:
        """These variables with ``values`` layered on top (the highest layer, ``source``)."""
        items = dict(self._items)
        for k, v in values.items():
            items[k] = VariableValue(v, source)
        return MergedVariables(items)

    def values_dict(self) -> dict[str, str | None]:
        """Plain ``{name: value}``."""
        return {k: v.value for k, v in self._items.items()}

    @property
    def missing(self) -> tuple[str, ...]:
        """Names with no value from any layer."""
        return tuple(k for k, v in self._items.items() if v.value is None)

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v.value!r} ({v.source})" for k, v in self._items.items())
        return f"MergedVariables({inner})"
