"""The providers' HTTP clients: aiohttp spoken to directly by default, httpx on request.

httpx's own pool scans every pooled connection for every request, and httpx request and
response objects on top of aiohttp cost about a tenth of a send's CPU
(benchmarks/bench_throughput.py); an API call needs none of httpx's layers (cookies,
auth hooks, redirects are never followed). So the default client is a plain
:class:`aiohttp.ClientSession`. httpx stays the *API* for a custom ``transport=`` (any
:class:`httpx.AsyncBaseTransport`, e.g. a mock) and for
``PROMPTSTATE_HTTP_TRANSPORT=httpx``.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import os
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeAlias

from promptstate.models.provider import Timeouts
from promptstate.providers._reply import AiohttpReply, HttpxReply, Reply
from promptstate.providers._secrets import register_url_secrets

if TYPE_CHECKING:
    import httpx

__all__ = [
    "BASE_HEADERS",
    "AiohttpClient",
    "Client",
    "HttpxClient",
    "classify",
    "is_transport_error",
    "make_client",
    "register_env_proxy_secrets",
]

if TYPE_CHECKING:
    # A transport, or a zero-argument factory called for every new client: an instance
    # is closed with its client and bound to one event loop, a factory survives both.
    TransportArg: TypeAlias = (
        httpx.AsyncBaseTransport | Callable[[], httpx.AsyncBaseTransport] | None
    )


class Client(abc.ABC):
    """POSTs a JSON body (already encoded) and answers with a :class:`Reply`."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool: ...

    @abc.abstractmethod
    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Reply:
        """Send; the reply's status line and headers are in, its body is unread."""

    @abc.abstractmethod
    async def aclose(self) -> None: ...


def make_client(url: str, timeouts: Timeouts, keepalive: int, transport: Any) -> Client:
    """The client of one provider on the running event loop.

    ``transport`` is the provider's ``transport=`` argument: ``None`` picks aiohttp
    (unless ``PROMPTSTATE_HTTP_TRANSPORT=httpx``), anything else goes through httpx.
    """
    # Both clients may send through an environment proxy (httpx's trust_env does too),
    # and a proxy URL's password is a credential like the key: register it before the
    # first request, so no error text, log line or stored run can quote it.
    register_env_proxy_secrets()
    if transport is None and os.environ.get("PROMPTSTATE_HTTP_TRANSPORT", "").lower() != "httpx":
        return AiohttpClient(url, timeouts)
    return HttpxClient(timeouts, keepalive, transport)


def register_env_proxy_secrets() -> None:
    """Register the user info and query of every ``*_PROXY`` variable as secrets."""
    for name, value in os.environ.items():
        if not name.lower().endswith("_proxy") or name.lower() == "no_proxy" or not value:
            continue
        # "user:pass@host:3128" (no scheme) is a proxy URL too, to aiohttp and httpx
        register_url_secrets(value if "://" in value else f"http://{value}")


# what httpx.AsyncClient adds to a request: the same headers whichever client sends
BASE_HEADERS = {
    "accept": "*/*",
    "accept-encoding": "gzip, deflate",
    "content-type": "application/json",
}


@functools.lru_cache(maxsize=1)
def tls_context() -> Any:
    """certifi's CA bundle as one :class:`ssl.SSLContext`, shared by every client.

    Loading the bundle costs ~25 ms; a context is safe to share between connections,
    threads and event loops, so a process loads it once (and only if it speaks TLS).
    """
    import ssl

    import certifi

    return ssl.create_default_context(cafile=certifi.where())


class AiohttpClient(Client):
    """One :class:`aiohttp.ClientSession`, made on the loop that uses it."""

    def __init__(self, url: str, timeouts: Timeouts) -> None:
        import aiohttp

        from promptstate._version import __version__

        # The environment's proxy for this URL (HTTPS_PROXY, NO_PROXY...) is looked up
        # once: aiohttp's trust_env would look it up (and read ~/.netrc) in an executor
        # thread for every request.
        proxy, proxy_auth = _env_proxy(url)
        # No connection cap here: the engine's per-provider semaphore is the cap, and
        # aiohttp's default of 100 would silently queue a larger max_concurrency.
        # A client posts only to its provider's URL, so a plain-http one (a local model
        # server, the fake server of the tests) without a proxy never needs the bundle;
        # aiohttp's own verified default stands in should it ever open a TLS connection.
        plain = url[:5].lower() == "http:" and proxy is None
        connector = aiohttp.TCPConnector(
            limit=0, keepalive_timeout=30.0, ssl=True if plain else tls_context()
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            trust_env=False,
            proxy=proxy,
            cookie_jar=aiohttp.DummyCookieJar(),  # an API call keeps no cookies
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
            ),
        )
        self._headers = {**BASE_HEADERS, "user-agent": f"promptstate/{__version__}"}
        # The proxy's login, as a header (aiohttp deprecates proxy_auth): on the CONNECT
        # of an https tunnel, or on the request itself when the proxy forwards plain http.
        self._proxy_headers: dict[str, str] | None = None
        self._plain_headers = self._headers
        if proxy_auth is not None:
            self._proxy_headers = {"Proxy-Authorization": proxy_auth.encode()}
            self._plain_headers = {**self._headers, **self._proxy_headers}
        # A session dropped without aclose() (a synchronous Session.close(), a new
        # event loop) closes its sockets quietly instead of aiohttp warning from __del__.
        weakref.finalize(self, _close_dropped_session, self._session)

    @property
    def closed(self) -> bool:
        return self._session.closed

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Reply:
        base = self._plain_headers if url.startswith("http:") else self._headers
        response = await self._session.post(
            url,
            data=body,
            headers={**base, **headers},
            allow_redirects=False,  # an API call never follows one: the 3xx is the error
            proxy_headers=self._proxy_headers,
        )
        return AiohttpReply(response)

    async def aclose(self) -> None:
        await self._session.close()


class HttpxClient(Client):
    """:class:`httpx.AsyncClient` on a custom (or httpx's own) transport."""

    def __init__(self, timeouts: Timeouts, keepalive: int, transport: Any) -> None:
        import httpx

        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            transport = transport()  # a factory: a fresh transport for every client
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(
                connect=timeouts.connect,
                read=timeouts.read,
                write=timeouts.read,
                pool=None,  # the engine's semaphore queues; a pool wait is not a timeout
            ),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=keepalive),
            transport=transport,
        )

    @property
    def closed(self) -> bool:
        return self._client.is_closed

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Reply:
        request = self._client.build_request(
            "POST", url, content=body, headers={"content-type": "application/json", **headers}
        )
        # Always streamed: a body (error or not) is read by us, with a size cap and
        # under the deadline, never whole by httpx.
        return HttpxReply(await self._client.send(request, stream=True))

    async def aclose(self) -> None:
        await self._client.aclose()


def is_transport_error(exc: BaseException) -> bool:
    """An error of the network stack (aiohttp, httpx, sockets), not of our code."""
    if isinstance(exc, OSError):
        return True
    module = type(exc).__module__
    return module.startswith(("aiohttp", "httpx", "httpcore", "h11", "anyio", "yarl"))


def classify(exc: BaseException, *, in_body: bool) -> str:
    """What kind of transport failure ``exc`` is.

    One of ``"connect_timeout"``, ``"read_timeout"``, ``"timeout"`` (other),
    ``"network"`` (refused, reset, dropped, a malformed reply: worth retrying) and
    ``"fatal"`` (a bad URL or scheme, sending again will not help).
    """
    module = type(exc).__module__
    if module.startswith("httpx"):
        return _classify_httpx(exc, in_body=in_body)
    if module.startswith("aiohttp"):
        import aiohttp

        if isinstance(exc, aiohttp.ConnectionTimeoutError):
            return "connect_timeout"
        if isinstance(exc, (aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError)):
            return "read_timeout"
        if isinstance(exc, (aiohttp.InvalidUrlClientError, aiohttp.NonHttpUrlClientError)):
            return "fatal"
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return "fatal"
    if isinstance(exc, TimeoutError):
        return "read_timeout" if in_body else "connect_timeout"
    if isinstance(exc, ValueError):
        return "fatal"  # yarl's (and aiohttp's) word for a URL it cannot parse
    return "network"


def _classify_httpx(exc: BaseException, *, in_body: bool) -> str:
    import httpx

    if isinstance(exc, httpx.ConnectTimeout) and _not_a_timeout(exc.__cause__):
        # httpx_aiohttp maps every aiohttp.ClientConnectionError (refused, reset,
        # server disconnected) to ConnectTimeout; only real timeouts are timeouts.
        return "network"
    if isinstance(exc, httpx.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, httpx.ReadTimeout):
        return "read_timeout"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)):
        return "network"
    if isinstance(exc, (httpx.HTTPError, httpx.InvalidURL)):
        return "fatal"
    return "network"  # raised unmapped by a transport (httpx_aiohttp): a protocol failure


def _not_a_timeout(cause: BaseException | None) -> bool:
    """True for an aiohttp connection error that httpx_aiohttp reported as a timeout."""
    if cause is None or isinstance(cause, TimeoutError):
        return False
    return type(cause).__module__.startswith("aiohttp")


def _env_proxy(url: str) -> tuple[Any, Any]:
    """``(proxy URL, proxy auth)`` the environment sets for ``url``, or ``(None, None)``."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        return get_env_proxy_for_url(URL(url))
    except (LookupError, ValueError):
        return None, None


def _close_dropped_session(session: Any) -> None:
    if session.closed:
        return
    connector = session.connector
    with contextlib.suppress(Exception):
        session.detach()
        close = getattr(connector, "_close", None)
        if close is not None:
            close()
