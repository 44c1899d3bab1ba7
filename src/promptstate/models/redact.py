"""The one redaction rule: every configured secret is removed from every string.

Secrets are registered once, where they are configured (a provider's API key, a header
marked secret, credentials or query values in a base URL), normalized (surrounding
whitespace stripped) and kept in a process-wide registry. Everything that can carry text
out of the process (error messages, run rows, devtools exports, widget state, logs) calls
:func:`redact` *before* it truncates or stores the text, so no prefix of a key survives a
cut either.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "add_secret", "redact", "redact_obj", "secrets"]

REDACTED = "[redacted]"
# shorter values (e.g. "1", "true") would redact ordinary text; real keys are far longer
MIN_SECRET_LENGTH = 6

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None


def _variants(secret: str) -> set[str]:
    # the key as written, and as it appears once JSON- or URL-escaped
    out = {secret, json.dumps(secret)[1:-1]}
    from urllib.parse import quote

    out.add(quote(secret, safe=""))
    return {v for v in out if len(v) >= MIN_SECRET_LENGTH}


def add_secret(secret: object) -> None:
    """Register a secret (ignored unless a string of at least :data:`MIN_SECRET_LENGTH`)."""
    global _secrets, _pattern
    if not isinstance(secret, str):
        return
    value = secret.strip()
    if len(value) < MIN_SECRET_LENGTH:
        return
    with _lock:
        new = _secrets | _variants(value)
        if new == _secrets:
            return
        _secrets = frozenset(new)
        # longest first, so a secret that contains another is removed whole
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def secrets() -> frozenset[str]:
    """Every registered secret variant (for tests and for scanning stored data)."""
    return _secrets


def redact(text: str, extra: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and every ``extra`` one) replaced."""
    if not isinstance(text, str) or not text:
        return text
    for s in extra:
        add_secret(s)
    pattern = _pattern
    if pattern is None:
        return text
    return pattern.sub(REDACTED, text)


def redact_obj(obj: Any) -> Any:
    """A copy of a JSON-like structure with every string (keys included) redacted."""
    if _pattern is None:
        return obj
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, dict):
        return {redact_obj(k): redact_obj(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(redact_obj(v) for v in obj)
    return obj
