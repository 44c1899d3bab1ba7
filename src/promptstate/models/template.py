"""``{{ name }}`` templates: parse, find variables, render, escape.

Grammar (deliberately tiny, so rendering can never evaluate anything):

- ``{{ name }}`` — a variable; ``name`` matches ``[A-Za-z_][A-Za-z0-9_]*`` and may be
  surrounded by whitespace.
- ``{{ '{{' }}`` — a literal ``{{`` (:func:`escape` writes this).
- any other ``{{`` is a :class:`~promptstate.TemplateError`; single braces, ``}}`` and
  everything else pass through untouched (JSON and code examples survive).

Values are substituted as plain text and never re-parsed, so a value containing
``{{ x }}`` is sent literally.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from promptstate.errors import MissingVariablesError, TemplateError

__all__ = ["Template", "escape", "parse", "render", "variables_of"]

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TAG = re.compile(r"\{\{\s*(?:(?P<name>" + _NAME + r")|(?P<lit>'\{\{'))\s*\}\}")
_LITERAL_TAG = "{{ '{{' }}"


@dataclass(frozen=True)
class Template:
    """A parsed template: literal text pieces interleaved with variable names.

    ``parts`` alternates ``str`` literals and ``(name,)`` one-tuples for variables.
    """

    source: str
    parts: tuple[str | tuple[str], ...]
    names: frozenset[str]

    def render(self, values: Mapping[str, str]) -> str:
        """Substitute ``values``; raises MissingVariablesError naming every absent name."""
        missing = [n for n in self.names if values.get(n) is None]
        if missing:
            raise MissingVariablesError(missing)
        out: list[str] = []
        for part in self.parts:
            out.append(part if isinstance(part, str) else values[part[0]])
        return "".join(out)


@lru_cache(maxsize=4096)
def parse(source: str) -> Template:
    """Parse ``source`` into a :class:`Template` (cached: prompts re-render often)."""
    if not isinstance(source, str):
        raise TemplateError(f"template must be a string, not {type(source).__name__}")
    parts: list[str | tuple[str]] = []
    names: set[str] = set()
    buf: list[str] = []
    pos = 0
    while True:
        start = source.find("{{", pos)
        if start < 0:
            buf.append(source[pos:])
            break
        buf.append(source[pos:start])
        m = _TAG.match(source, start)
        if m is None:
            snippet = source[start : start + 24].split("\n", 1)[0]
            raise TemplateError(
                f"malformed template tag starting {snippet!r}: expected '{{{{ name }}}}'; "
                f"write a literal '{{{{' as {_LITERAL_TAG!r}",
                source,
                start,
            )
        if m.group("lit"):
            buf.append("{{")
        else:
            if buf:
                parts.append("".join(buf))
                buf = []
            name = m.group("name")
            parts.append((name,))
            names.add(name)
        pos = m.end()
    tail = "".join(buf)
    if tail:
        parts.append(tail)
    return Template(source, tuple(parts), frozenset(names))


def variables_of(source: str) -> frozenset[str]:
    """Names of the variables ``source`` uses."""
    return parse(source).names


def render(source: str, values: Mapping[str, str]) -> str:
    """Render ``source`` with ``values`` (strict: every used variable needs a value)."""
    return parse(source).render(values)


def escape(text: str) -> str:
    """Return a template that renders to exactly ``text`` (``render(escape(x), {}) == x``)."""
    return text.replace("{{", _LITERAL_TAG)
