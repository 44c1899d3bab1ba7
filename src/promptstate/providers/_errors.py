"""How the HTTP providers turn transport failures and error statuses into ProviderErrors.

Every message passes through :func:`~promptstate.models.redact.redact` before it is cut
short (:func:`detail`), so no prefix of a key survives a truncation either; a raw error
whose own text still quotes a secret is dropped from the chain.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from promptstate.errors import (
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
)
from promptstate.models.redact import redact
from promptstate.providers._retry import RetryableError, parse_retry_after
from promptstate.providers._secrets import display_url, safe_str, scrub_chain
from promptstate.providers._transport import classify

if TYPE_CHECKING:
    from promptstate.models.provider import Timeouts
    from promptstate.providers._reply import Reply

__all__ = ["ERROR_BODY_BYTES", "REASON_CHARS", "detail", "status_error", "transport_error"]

# Statuses worth sending again: rate limits, request timeouts, server trouble (incl. 529).
_RETRYABLE_STATUS = frozenset({408, 429})

# An error body is read up to this much: the message shown is the first _DETAIL_CHARS
# of it (after redaction), so a secret cut at this boundary is never displayed.
ERROR_BODY_BYTES = 64 * 1024
_DETAIL_CHARS = 500
REASON_CHARS = 100


def detail(text: str, limit: int = _DETAIL_CHARS) -> str:
    """Redact first, then cut: a cut through a key must not leave its prefix behind."""
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def transport_error(
    name: str, timeouts: Timeouts, exc: Exception, url: str, *, in_body: bool
) -> RetryableError | ProviderError:
    """The redacted error for a failure of the network stack; retryable unless fatal."""
    cause: BaseException | None
    if not scrub_chain(exc):
        # the exception's own text quotes a secret even after redacting its args:
        # keep our (redacted) message and drop the raw error from the chain
        cause = None
        text = detail(safe_str(exc))
    else:
        cause = exc
        text = detail(str(exc) or type(exc).__name__)
    where = display_url(url)
    kind = classify(exc, in_body=in_body)
    error: ProviderError
    if kind == "connect_timeout":
        error = ProviderTimeoutError(
            f"{name}: timed out: connecting to {where} took over {timeouts.connect:g}s"
        )
        reason = "timeout"
    elif kind == "read_timeout":
        error = ProviderTimeoutError(
            f"{name}: timed out: no data from {where} for {timeouts.read:g}s"
        )
        reason = "timeout"
    elif kind == "timeout":
        error = ProviderTimeoutError(f"{name}: timed out: {type(exc).__name__} on {where}")
        reason = "timeout"
    elif kind == "network" and in_body:
        error = ProviderStreamError(f"{name}: connection dropped mid-stream: {text or 'closed'}")
        reason = "stream dropped"
    elif kind == "network":
        error = ProviderConnectionError(f"{name}: cannot reach {where}: {text or 'closed'}")
        reason = "connection error"
    else:
        # Bad URL, unsupported scheme, a bad certificate: sending again will not help.
        error = ProviderConnectionError(f"{name}: request to {where} failed: {text}")
        _set_cause(error, cause)
        return error
    _set_cause(error, cause)
    return RetryableError(error, reason)


def status_error(name: str, reply: Reply, raw: bytes) -> RetryableError | ProviderError:
    """The error for a non-2xx reply whose body (up to a cap) is ``raw``."""
    status = reply.status
    message = (
        f"{name}: HTTP {status} {detail(reply.reason, REASON_CHARS)} from "
        f"{display_url(reply.url)}: {_api_error_message(raw, reply.charset or 'utf-8')}"
    )
    error = ProviderHTTPError(redact(message), status_code=status)
    if status in _RETRYABLE_STATUS or status >= 500:
        return RetryableError(error, f"HTTP {status}", parse_retry_after(reply.headers))
    return error


def _set_cause(error: ProviderError, cause: BaseException | None) -> None:
    error.__cause__ = cause
    error.__suppress_context__ = True


def _api_error_message(raw: bytes, encoding: str) -> str:
    """The human part of an API error body: ``error.message`` in OpenAI and Anthropic.

    Redacted before it is cut to :data:`_DETAIL_CHARS`.
    """
    try:
        text = raw.decode(encoding, "replace")
    except LookupError:  # an unknown charset in content-type
        text = raw.decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            message: str = err["message"]
            kind = err.get("type") or err.get("code")
            if isinstance(kind, str) and kind:
                message = f"{message} ({kind})"
            return detail(message)
        if isinstance(err, str):
            return detail(err)
        if isinstance(body.get("message"), str):
            return detail(str(body["message"]))
        if isinstance(body.get("detail"), str):  # FastAPI-based local servers
            return detail(str(body["detail"]))
    return detail(text) or "(empty body)"
