"""The default HTTP transport of the providers (aiohttp through httpx when installed)."""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Any

import httpx

__all__ = ["TransportArg", "default_transport"]

# A transport, or a zero-argument factory called for every new client: an instance is
# closed with its client and bound to one event loop, a factory survives both.
TransportArg = httpx.AsyncBaseTransport | Callable[[], httpx.AsyncBaseTransport] | None


def default_transport(url: str | None = None) -> httpx.AsyncBaseTransport | None:
    """The transport a provider uses when given none: aiohttp's, if installed.

    httpx's own pool scans every pooled connection for every request, which under
    concurrency costs milliseconds per request (benchmarks/bench_throughput.py measures
    ~5x the throughput through ``httpx_aiohttp`` at 50 concurrent streams). ``None``
    (httpx's default transport) when ``httpx_aiohttp`` is not importable or
    ``PROMPTSTATE_HTTP_TRANSPORT=httpx`` is set.

    The environment's proxy for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...) is looked up
    once, when the client is made: aiohttp's ``trust_env`` would look it up (and read
    ``~/.netrc``) in an executor thread for every request.
    """
    if os.environ.get("PROMPTSTATE_HTTP_TRANSPORT", "").lower() == "httpx":
        return None
    try:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        return None

    def session() -> aiohttp.ClientSession:
        # No connection cap here (the engine's per-provider semaphore is the cap; the
        # transport's default of 100 would silently queue a larger max_concurrency),
        # certificates as httpx verifies them, proxies from the environment as httpx.
        connector = aiohttp.TCPConnector(
            limit=0, keepalive_timeout=30.0, ssl=httpx.create_ssl_context()
        )
        made = aiohttp.ClientSession(
            connector=connector, trust_env=False, proxy=proxy, proxy_auth=proxy_auth
        )
        owner = ref()
        if owner is not None:
            weakref.finalize(owner, _close_dropped_session, made)
        return made

    proxy, proxy_auth = _env_proxy(url) if url else (None, None)
    transport = AiohttpTransport(client=session)
    ref = weakref.ref(transport)
    return transport


def _env_proxy(url: str) -> tuple[Any, Any]:
    """``(proxy URL, proxy auth)`` the environment sets for ``url``, or ``(None, None)``."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None, None


def _close_dropped_session(session: Any) -> None:
    """Close the sockets of a session whose client was dropped without ``aclose()``.

    That happens after a synchronous ``Session.close()`` or when a new event loop
    replaces the client; httpx's own pool closes such sockets silently, and aiohttp
    would instead log "Unclosed client session" from its ``__del__``.
    """
    if session.closed:
        return
    connector = session.connector
    with contextlib.suppress(Exception):
        session.detach()
        close = getattr(connector, "_close", None)
        if close is not None:
            close()
