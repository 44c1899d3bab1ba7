"""Providers by model-string prefix (the engine's provider-resolver port)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable

from promptstate.errors import ProviderConfigError, UnknownProviderError
from promptstate.models.provider import Provider, validate_model
from promptstate.models.redact import secrets as registered_secrets
from promptstate.providers._echo import Echo

__all__ = ["ProviderRegistry"]


class ProviderRegistry:
    """Providers by model-string prefix: ``echo`` always; ``openai``/``anthropic`` on demand."""

    def __init__(self, providers: Iterable[Provider] = ()) -> None:
        self._providers: dict[str, Provider] = {"echo": Echo()}
        self._lock = threading.Lock()
        for p in providers:
            self.add(p)

    def add(self, provider: Provider) -> Provider:
        """Add (or replace) a provider under ``provider.name``."""
        if not isinstance(provider, Provider):
            raise TypeError(f"not a provider: {type(provider).__name__}")
        with self._lock:
            self._providers[provider.name] = provider
        return provider

    def get(self, name: str) -> Provider:
        """The provider for a prefix; builds the default OpenAI/Anthropic ones from env vars."""
        with self._lock:
            found = self._providers.get(name)
            if found is not None:
                return found
            if name in ("openai", "anthropic"):
                from promptstate import providers as _p

                made: Provider = _p.OpenAICompatible() if name == "openai" else _p.Anthropic()
                self._providers[name] = made
                return made
            known = list(self._providers)
        raise UnknownProviderError(name, [*known, "openai", "anthropic"])

    def resolve(self, model: str) -> tuple[str, str, Provider]:
        """Split ``"provider:model"`` (``"echo"`` alone is allowed) and find the provider.

        Raises
        ------
        UnknownProviderError
            No provider has that prefix (or ``model`` is empty).
        ProviderConfigError
            Nothing, or a name with control characters, after the prefix (``"openai:"``).
        """
        if not isinstance(model, str) or not model:
            raise UnknownProviderError(repr(model))
        name, sep, rest = model.partition(":")
        if not sep:
            if name == "echo":
                return "echo", "echo", self.get("echo")
            raise UnknownProviderError(name, [*self._providers, "openai", "anthropic"])
        provider = self.get(name)
        if not rest and name != "echo":
            # "openai:" would otherwise send the model name "openai"
            raise ProviderConfigError(f"model string {model!r} names no model after {name!r}:")
        return name, validate_model(rest) if rest else name, provider

    def secrets(self) -> list[str]:
        """Every secret registered for redaction (API keys, secret headers, URL parts).

        Providers register theirs with :func:`promptstate.models.redact.add_secret`
        when they are built; this is that process-wide set, for callers that scan
        text themselves. Never log it.
        """
        return sorted(registered_secrets())

    def names(self) -> list[str]:
        """Configured prefixes."""
        with self._lock:
            return sorted(self._providers)

    async def aclose(self) -> None:
        """Close every provider's HTTP client."""
        with self._lock:
            provs = list(self._providers.values())
        for p in provs:
            with contextlib.suppress(Exception):
                await p.aclose()

    def __repr__(self) -> str:
        return f"ProviderRegistry({self.names()})"
