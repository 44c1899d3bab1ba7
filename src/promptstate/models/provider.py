"""The provider port: what the engine asks of an LLM client, and the stream events it yields.

Everything the engine needs to talk to a provider lives here; the HTTP machinery that
concrete providers share is in ``_http.py``.
"""

from __future__ import annotations

import abc
import json
import math
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from promptstate.errors import ProviderConfigError, ProviderError

__all__ = [
    "DEFAULT_TOTAL_TIMEOUT",
    "AttemptStarted",
    "ChatRequest",
    "Provider",
    "Reply",
    "RetryPolicy",
    "StreamEvent",
    "TextDelta",
    "Timeouts",
    "UsageInfo",
    "validate_model",
    "validate_settings",
]

# Seconds one call may take in all, retries and backoff included: long enough for a
# slow model writing a long reply, short enough that a server which never stops
# sending (keep-alive pings, a reply without end) cannot hold a run open for hours.
DEFAULT_TOTAL_TIMEOUT = 600.0

# One JSON encoder for validation: strict about NaN/Infinity, which json.dumps would
# otherwise write as bare tokens that no API accepts.
_STRICT_JSON = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


_GOOD_MODELS: set[str] = set()


def validate_model(model: object) -> str:
    """Return ``model`` if it is a usable model name, else raise.

    Parameters
    ----------
    model : object
        A model name without the provider prefix (``"gpt-4o-mini"``).

    Raises
    ------
    ProviderConfigError
        Not a string, empty or only whitespace, or containing control characters.
    """
    if not isinstance(model, str):
        raise ProviderConfigError(f"model must be a string, not {type(model).__name__}")
    if model in _GOOD_MODELS:  # every request checks its model: most are seen before
        return model
    if not model.strip():
        raise ProviderConfigError("model must be a non-empty name, e.g. 'gpt-4o-mini'")
    if any(ord(c) < 32 or ord(c) == 127 for c in model):
        raise ProviderConfigError(f"model name has control characters: {model!r}")
    if len(_GOOD_MODELS) < 1024:
        _GOOD_MODELS.add(model)
    return model


def validate_settings(settings: object) -> dict[str, Any]:
    """Return ``settings`` as a plain dict if every value can be sent as finite JSON.

    The engine calls this before a run starts, so a bad setting is a typed error at
    ``send()`` time rather than a failed run (or, worse, ``NaN`` in a request body).

    Parameters
    ----------
    settings : mapping
        Request settings (``temperature``, ``max_tokens``, ``stop``...).

    Returns
    -------
    dict
        A shallow copy, in the same order.

    Raises
    ------
    ProviderConfigError
        Not a mapping, a key that is not a non-empty string, or a value that JSON
        cannot encode (``NaN``, infinities, arbitrary objects, circular containers);
        the message names the key.
    """
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise ProviderConfigError(f"settings must be a mapping, not {type(settings).__name__}")
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if not isinstance(key, str) or not key:
            raise ProviderConfigError(f"setting names must be non-empty strings, not {key!r}")
        try:
            _STRICT_JSON(value)
        except ValueError as exc:  # NaN/Infinity, or a circular reference
            raise ProviderConfigError(
                f"setting {key!r} is not finite JSON ({exc}): {_short_repr(value)}"
            ) from None
        except TypeError:
            raise ProviderConfigError(
                f"setting {key!r} cannot be sent as JSON: {type(value).__name__} "
                f"{_short_repr(value)}"
            ) from None
        out[key] = value
    return out


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_number(owner: str, name: str, value: object, *, minimum: float, strict: bool) -> None:
    # bool is an int subclass, and True seconds is surely a mistake
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProviderConfigError(f"{owner}.{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ProviderConfigError(f"{owner}.{name} must be finite and {bound}, not {value!r}")


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion request, independent of the API that serves it.

    Parameters
    ----------
    model : str
        Model name without the provider prefix, e.g. ``"gpt-4o-mini"``.
    messages : tuple of mappings
        ``{"role": "system" | "user" | "assistant", "content": str}`` in order.
    settings : mapping
        Passed through into the API body (``temperature``, ``max_tokens``, ``stop``...).
    stream : bool
        Stream over SSE (default) or make one plain JSON request.
    """

    model: str
    messages: tuple[Mapping[str, str], ...]
    settings: Mapping[str, Any] = field(default_factory=dict)
    stream: bool = True

    def __post_init__(self) -> None:
        # A provider fed directly (not through the engine) still fails with a typed
        # error before anything is sent, not with a TypeError deep inside httpx.
        validate_model(self.model)
        validate_settings(self.settings)
        if not isinstance(self.messages, tuple) or not all(
            isinstance(m, Mapping) for m in self.messages
        ):
            raise ProviderConfigError("messages must be a tuple of {'role', 'content'} mappings")


@dataclass(frozen=True)
class TextDelta:
    """A piece of the reply text, in order; the reply is the concatenation."""

    text: str


@dataclass(frozen=True)
class UsageInfo:
    """Token counts as reported by the API; emitted at most once, after the text.

    Not emitted when the API reports no usage; either field may be ``None``.
    """

    input_tokens: int | None
    output_tokens: int | None


@dataclass(frozen=True)
class AttemptStarted:
    """Emitted before every attempt, before any backoff sleep.

    Parameters
    ----------
    attempt : int
        1 for the first attempt.
    reason : str or None
        Why the previous attempt is being retried (``"HTTP 429"``, ``"timeout"``,
        ``"connection error"``, ``"stream dropped"``...); ``None`` for attempt 1.
    delay : float
        Seconds the provider will sleep before sending this attempt.
    """

    attempt: int
    reason: str | None
    delay: float = 0.0


StreamEvent = TextDelta | UsageInfo | AttemptStarted

_P = TypeVar("_P", bound="Provider")


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to back off between attempts.

    Retries happen on HTTP 408, 429 and 5xx, connection errors, timeouts and streams
    dropped before any text, and never once text has been yielded. The delay is
    ``base_delay * 2 ** (attempt - 1)`` scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``; a ``Retry-After`` header (seconds or HTTP date) or
    OpenAI's ``retry-after-ms`` replaces it. Every delay is capped by ``max_delay``.

    Parameters
    ----------
    max_attempts : int
        Attempts in total, including the first (1 disables retries).
    base_delay, max_delay : float
        Seconds.
    jitter : float
        Relative spread of the random factor, 0 for none.
    """

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ProviderConfigError(
                f"RetryPolicy.max_attempts must be an int >= 1, not {attempts!r}"
            )
        _check_number("RetryPolicy", "base_delay", self.base_delay, minimum=0, strict=False)
        _check_number("RetryPolicy", "max_delay", self.max_delay, minimum=0, strict=False)
        _check_number("RetryPolicy", "jitter", self.jitter, minimum=0, strict=False)
        if self.jitter > 1:
            raise ProviderConfigError(f"RetryPolicy.jitter must be <= 1, not {self.jitter!r}")


@dataclass(frozen=True)
class Timeouts:
    """Network timeouts in seconds; each must be a positive finite number.

    Parameters
    ----------
    connect : float
        Establishing the TCP/TLS connection.
    read : float
        The longest gap between two received bytes; a stream that stalls longer raises
        :class:`ProviderTimeoutError`.
    total : float
        The deadline of one whole call: every attempt, backoff sleep and byte of the
        reply must fit in it. Each received byte resets ``read``, so only this ends a
        server that never stops sending (keep-alive comments, headers a byte at a
        time, a reply without end); it raises :class:`ProviderTimeoutError` saying
        "exceeded total deadline". Defaults to :data:`DEFAULT_TOTAL_TIMEOUT` (600 s).

    Raises
    ------
    ProviderConfigError
        A value that is not a positive finite number (``NaN``, negative, a string...).
    """

    connect: float = 10.0
    read: float = 60.0
    total: float = DEFAULT_TOTAL_TIMEOUT

    def __post_init__(self) -> None:
        for name in ("connect", "read", "total"):
            _check_number("Timeouts", name, getattr(self, name), minimum=0, strict=True)


# a reply known without I/O: the events stream() would yield, and the error it ends with
Reply = tuple[tuple[StreamEvent, ...], ProviderError | None]


class Provider(abc.ABC):
    """An LLM API that turns a :class:`ChatRequest` into a stream of events.

    Attributes
    ----------
    name : str
        The prefix used in model strings (``"openai"``, ``"anthropic"``, ``"local"``).
    max_concurrency : int
        How many calls the engine lets run at once against this provider.
    """

    name: str
    max_concurrency: int = 16

    @abc.abstractmethod
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield :class:`AttemptStarted`, :class:`TextDelta` and :class:`UsageInfo` events.

        Implementations are async generators. Consume them inside
        ``contextlib.aclosing`` so the HTTP stream is closed as soon as the consumer
        stops; cancelling the consuming task closes it too.

        Raises
        ------
        ProviderError
            A subclass, once retries are exhausted or not allowed.
        """

    def reply_now(self, request: ChatRequest) -> Reply | None:
        """The whole reply, when the provider knows it without any I/O (else None).

        Returns the events :meth:`stream` would yield and the error it would end with
        (``None`` on success). The default is None: every call goes through
        :meth:`stream`. A bulk caller (a sweep) uses it to skip a task per call.
        """
        return None

    async def aclose(self) -> None:  # noqa: B027 - optional hook, default is no-op
        """Release network resources; the provider may be used again afterwards."""

    async def __aenter__(self: _P) -> _P:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
