"""LLM providers: async clients that stream a chat reply as events.

Each provider's ``stream(request)`` is an async generator of :class:`AttemptStarted`,
:class:`TextDelta` and :class:`UsageInfo`; consume it inside ``contextlib.aclosing`` so
the HTTP stream closes as soon as the consumer stops::

    provider = OpenAICompatible(base_url="http://127.0.0.1:8000/v1")
    request = ChatRequest("my-model", ({"role": "user", "content": "hi"},))
    async with aclosing(provider.stream(request)) as events:
        async for event in events:
            ...
"""

from typing import TYPE_CHECKING, Any

from promptstate.errors import (
    ProviderConfigError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
    ProviderStreamError,
    ProviderTimeoutError,
)
from promptstate.models.provider import (
    AttemptStarted,
    ChatRequest,
    Provider,
    RetryPolicy,
    StreamEvent,
    TextDelta,
    Timeouts,
    UsageInfo,
    validate_model,
    validate_settings,
)
from promptstate.providers._echo import Echo

if TYPE_CHECKING:
    from promptstate.providers._anthropic import Anthropic
    from promptstate.providers._openai import OpenAICompatible

__all__ = [
    "Anthropic",
    "AttemptStarted",
    "ChatRequest",
    "Echo",
    "OpenAICompatible",
    "Provider",
    "ProviderConfigError",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderHTTPError",
    "ProviderStreamError",
    "ProviderTimeoutError",
    "RetryPolicy",
    "StreamEvent",
    "TextDelta",
    "Timeouts",
    "UsageInfo",
    "validate_model",
    "validate_settings",
]


def __getattr__(name: str) -> Any:
    # httpx costs ~50 ms to import: load the HTTP providers on first use, so
    # `import promptstate` stays fast and the offline echo path never pays for it
    if name == "OpenAICompatible":
        from promptstate.providers._openai import OpenAICompatible

        return OpenAICompatible
    if name == "Anthropic":
        from promptstate.providers._anthropic import Anthropic

        return Anthropic
    raise AttributeError(f"module 'promptstate.providers' has no attribute {name!r}")
