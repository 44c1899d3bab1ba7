"""Secrets the HTTP providers are configured with: registered once, never shown.

The API key, secret-looking or ``secret_headers`` header values, and credentials and
query values of a base URL are registered with
:func:`promptstate.models.redact.add_secret` when a provider is built; the helpers here
also scrub exception chains and httpx's request log lines.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
from collections.abc import Iterable
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from promptstate.errors import ProviderConfigError
from promptstate.models.redact import add_secret, redact

__all__ = [
    "Hidden",
    "add_credential",
    "check_header_value",
    "display_url",
    "is_secret_header",
    "redact_httpx_logs",
    "register_url_secrets",
    "safe_str",
    "scrub_chain",
    "split_userinfo",
]

# Header names whose values are credentials (Authorization, api-key, x-api-key,
# x-goog-api-key, cookie, x-auth-token...).
_SECRET_HEADER_WORDS = ("auth", "key", "token", "secret", "passw", "cookie", "credential")


_V = TypeVar("_V")


class Hidden(Generic[_V]):
    """Holds a value (API key, headers, full URL) that no repr, vars() or debugger shows."""

    __slots__ = ("_value",)

    def __init__(self, value: _V) -> None:
        self._value = value

    def get(self) -> _V:
        return self._value

    def __repr__(self) -> str:
        return "<hidden>" if self._value else "None"


def display_url(url: str) -> str:
    """The URL without user info, query or fragment (where keys sometimes hide)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(invalid URL)"
    netloc = parts.netloc.rpartition("@")[2]
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


class _RedactingFilter(logging.Filter):
    """Redacts httpx's own log records: its INFO line quotes the URL, query included."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def redact_httpx_logs() -> None:
    logger = logging.getLogger("httpx")
    if not any(isinstance(f, _RedactingFilter) for f in logger.filters):
        logger.addFilter(_RedactingFilter())


def is_secret_header(name: str, secret_headers: Iterable[str] = ()) -> bool:
    """True if a header's value is a credential: by its name, or named by the caller."""
    lower = name.lower()
    if lower in {h.lower() for h in secret_headers}:
        return True
    return any(word in lower for word in _SECRET_HEADER_WORDS)


def add_credential(value: str) -> None:
    """Register a credential and the parts of it a server may echo on their own."""
    add_secret(value)
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if not rest:
        return
    add_secret(rest)  # "Bearer sk-..." -> "sk-..."
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(rest, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return
        add_secret(decoded)
        add_secret(decoded.partition(":")[2])


def register_url_secrets(url: str) -> None:
    """Register the user info and every query value of ``url`` as secrets.

    Covers ``https://user:pass@host`` (and the ``Authorization: Basic`` header httpx
    builds from it) and ``?key=...`` / ``?api-version=...``: a query value cannot be
    told apart from a key by its name, so every one is treated as secret.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        add_secret(url)  # unparsable: hide it whole
        return
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        add_secret(userinfo)
        user, _, password = userinfo.partition(":")
        for raw in (user, password):
            add_secret(raw)
            add_secret(unquote(raw))
        pair = f"{unquote(user)}:{unquote(password)}"
        add_secret(pair)
        add_secret(base64.b64encode(pair.encode()).decode("ascii"))
    if parts.query:
        add_secret(parts.query)
        for _, value in parse_qsl(parts.query, keep_blank_values=True):
            add_secret(value)


def check_header_value(name: str, value: object) -> str:
    if not isinstance(name, str) or not name or not isinstance(value, str):
        raise ProviderConfigError(f"header names and values must be strings (header {name!r})")
    stripped = value.strip()
    if any(ord(c) < 32 or ord(c) == 127 for c in stripped):
        # the value itself is never shown: it may be a key with a stray newline inside
        raise ProviderConfigError(
            f"header {name!r} has a line break or control character inside its value"
        )
    return stripped


def scrub_chain(exc: BaseException) -> bool:
    """Redact the args of ``exc`` and of its causes in place; False if text still leaks.

    Exceptions from httpx, h11 and aiohttp quote what the server sent (a status line, a
    header) and may quote the key with it. Their messages live in ``args``, which are
    rewritten, along ``__cause__`` and ``__context__`` (shown or not: a log handler may
    walk either); an exception whose text still shows a secret afterwards (its
    ``__str__`` reads other attributes) is cut out of the chain.
    """
    seen: set[int] = set()
    stack: list[tuple[BaseException, BaseException | None]] = [(exc, None)]
    clean = True
    while stack:
        current, parent = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        with contextlib.suppress(Exception):
            current.args = tuple(redact(a) if isinstance(a, str) else a for a in current.args)
        try:
            text = f"{current}{current!r}"
            leaks = redact(text) != text
        except Exception:  # a broken __str__: treat it as unsafe
            leaks = True
        if leaks:
            if parent is None:
                clean = False
            else:
                if parent.__cause__ is current:
                    parent.__cause__ = None
                if parent.__context__ is current:
                    parent.__context__ = None
                parent.__suppress_context__ = True
            continue
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append((linked, current))
    return clean


def split_userinfo(url: str) -> tuple[str, str | None]:
    """``url`` without ``user:password@``, and the Basic Authorization value for it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at:
        return url, None
    user, _, password = userinfo.partition(":")
    pair = f"{unquote(user)}:{unquote(password)}".encode()
    stripped = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return stripped, "Basic " + base64.b64encode(pair).decode("ascii")


def safe_str(exc: BaseException) -> str:
    try:
        return str(exc) or type(exc).__name__
    except Exception:
        return type(exc).__name__
