"""The provider contract: request and event types, retry/timeout settings, the ABC.

Everything the engine needs to talk to a provider lives here; the HTTP machinery that
concrete providers share is in ``_http.py``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

__all__ = [
    "AttemptStarted",
    "ChatRequest",
    "Provider",
    "RetryPolicy",
    "StreamEvent",
    "TextDelta",
    "Timeouts",
    "UsageInfo",
]


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


@dataclass(frozen=True)
class Timeouts:
    """Network timeouts in seconds.

    Parameters
    ----------
    connect : float
        Establishing the TCP/TLS connection.
    read : float
        The longest gap between two received bytes; a stream that stalls longer raises
        :class:`ProviderTimeoutError`.
    """

    connect: float = 10.0
    read: float = 60.0


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
