"""The REST client: resolve a service name, call with a deadline, follow HAL links.

Every call goes through :class:`~servicewire.resilience.Resilience` (deadline, retry of
idempotent methods only, a circuit breaker and a bulkhead per service) and a
:class:`~servicewire.discovery.Locator` (round-robin over live instances). Errors come
back typed: a problem details response becomes ``NotFoundError``, ``ConflictError``,
``InvalidArgumentError`` (with the invalid fields), ``RemoteServerError`` ...::

    async with RestClient({"orders": ["127.0.0.1:8001"]}) as client:
        root = await client.get("orders", "/v1/")
        order = await client.follow(root, "orders", json={"consumer_id": "c-1", "items": [...]})
        order = await client.follow(order, "cancel")     # no URL written by hand
        "cancel" in order.links                          # False: the order is cancelled

The transport is one aiohttp session per client (connection pooling, keep-alive), with
the limits of :mod:`servicewire.rest.transport`; a path, method or header that could
change the request's framing (CR, LF, NUL ...) is refused before anything is sent
(:mod:`servicewire.rest.request_safety`). Redirects are not followed: a 3xx is reported
as a :class:`~servicewire.resilience.RemoteError`, not returned as a success.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import orjson

from servicewire.discovery import Instance, Locator, Resolver, StaticResolver
from servicewire.errors import ServicewireError
from servicewire.resilience import (
    IDEMPOTENT_METHODS,
    CallRetryPolicy,
    Deadline,
    RemoteError,
    RemoteServerError,
    Resilience,
    ServiceUnavailableError,
    counts_as_failure,
    is_transient,
    remote_error_class,
)
from servicewire.rest.hal import Link
from servicewire.rest.negotiation import is_json
from servicewire.rest.problems import PROBLEM_JSON
from servicewire.rest.request_safety import check_headers, check_method, check_target
from servicewire.rest.transport import (
    DEFAULT_MAX_BODY,
    ResponseLimitError,
    open_session,
    read_body,
)
from servicewire.security.tls import TLSConfig

if TYPE_CHECKING:
    import ssl

    from servicewire.security.identity import TokenIssuer

_ACCEPT = "application/hal+json, application/json;q=0.9, application/problem+json;q=0.5"
# A 304 answers a conditional request; without one of these it is a redirect like any 3xx.
_CONDITIONAL = ("if-none-match", "if-modified-since")


class LinkNotFoundError(ServicewireError, LookupError):
    """A representation has no link with the relation a client asked to follow."""

    def __init__(self, rel: str, available: Sequence[str]) -> None:
        self.rel = rel
        self.available = list(available)
        have = ", ".join(available) or "none"
        super().__init__(f"no {rel!r} link in the representation (links: {have})")


class Representation:
    """A successful response: status, headers, body, and its HAL links."""

    __slots__ = ("_data", "body", "headers", "service", "status")

    def __init__(self, service: str, status: int, headers: Mapping[str, str], body: bytes) -> None:
        self.service = service
        self.status = status
        self.headers = headers
        self.body = body
        self._data: Any = None

    @property
    def data(self) -> Any:
        """The decoded JSON body (``None`` for an empty body)."""
        if self._data is None and self.body:
            self._data = orjson.loads(self.body)
        return self._data

    @property
    def links(self) -> dict[str, Link]:
        data = self.data
        raw = data.get("_links", {}) if isinstance(data, dict) else {}
        return {rel: Link.model_validate(value) for rel, value in raw.items()}

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def location(self) -> str | None:
        return self.headers.get("location")

    def __repr__(self) -> str:
        return f"<Representation {self.service} {self.status} {len(self.body)} bytes>"


def _remote_error(service: str, status: int, content_type: str, body: bytes) -> RemoteError:
    problem: dict[str, Any] = {}
    if content_type.startswith(PROBLEM_JSON) or is_json(content_type):
        try:
            parsed = orjson.loads(body)
            if isinstance(parsed, dict):
                problem = parsed
        except orjson.JSONDecodeError:
            pass
    cls = remote_error_class(status)
    detail = problem.get("detail") or body[:200].decode("utf-8", "replace") or "no detail"
    errors = problem.get("errors")
    return cls(
        service,
        str(detail),
        status=status,
        title=str(problem.get("title", "")),
        type=str(problem.get("type", "about:blank")),
        errors=errors if isinstance(errors, list) else None,
    )


def _joined(headers: Mapping[str, str]) -> dict[str, str]:
    """Lower-case names; a repeated header's values joined with ``", "``."""
    joined: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        joined[key] = f"{joined[key]}, {value}" if key in joined else value
    return joined


def _is_conditional(headers: Mapping[str, str]) -> bool:
    return any(name.lower() in _CONDITIONAL for name in headers)


DEFAULT_RETRY = CallRetryPolicy(
    attempts=3, initial_backoff=0.05, max_backoff=1.0, retryable=is_transient
)


class RestClient:
    """A resilient HTTP/1.1 keep-alive client for services found through discovery.

    ``services`` is a :class:`Locator`, any :class:`Resolver`, or a static mapping of
    service names to addresses. One client holds one connection pool (an aiohttp
    session, opened on the first call inside the running loop, closed by :meth:`close`;
    a closed client opens a new one if it is used again); share it. Open connections per
    instance follow the number of concurrent calls, which the bulkhead caps;
    ``max_idle_connections`` bounds the connections open to one instance (a call beyond
    it waits for one), idle ones close after 4 s. A response body larger than
    ``max_body_bytes`` fails the call with ``RemoteServerError``.
    """

    def __init__(
        self,
        services: Locator | Resolver | Mapping[str, Sequence[str]],
        *,
        resilience: Resilience | None = None,
        max_idle_connections: int = 256,
        max_body_bytes: int = DEFAULT_MAX_BODY,
        headers: Mapping[str, str] | None = None,
        auth: TokenIssuer | None = None,
        tls: TLSConfig | ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(services, Locator):
            self.locator = services
        elif isinstance(services, Resolver):
            self.locator = Locator(services)
        else:
            self.locator = Locator(StaticResolver(services))
        self.resilience = resilience or Resilience(
            timeout=5.0, retry=DEFAULT_RETRY, is_failure=counts_as_failure
        )
        self._headers = {"accept": _ACCEPT, **(headers or {})}
        check_headers(self._headers)
        self._auth = auth
        self._ssl_context = tls.client_context() if isinstance(tls, TLSConfig) else tls
        self._scheme = "http" if self._ssl_context is None else "https"
        self._max_connections = max_idle_connections
        self.max_body_bytes = max_body_bytes
        self._session: aiohttp.ClientSession | None = None

    def _open_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            session = self._session = open_session(
                ssl_context=self._ssl_context, max_connections_per_host=self._max_connections
            )
        return session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    aclose = close

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Representation:
        """Call ``method path`` on an instance of ``service``.

        ``idempotent`` defaults to what the method is (GET, PUT, DELETE yes; POST no);
        pass ``True`` for a POST that carries an idempotency key.
        """
        method = method.upper()
        check_method(method)
        check_target(path)
        body = orjson.dumps(json) if json is not None else None
        all_headers = dict(self._headers)
        if body is not None:
            all_headers["content-type"] = "application/json"
        if headers:
            check_headers(headers)
            all_headers.update(headers)
        if self._auth is not None:
            all_headers.update(self._auth.headers(service))  # audience: the service called
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS

        async def attempt(deadline: Deadline) -> Representation:
            instance = await self.locator.pick(service)
            return await self._send(instance, method, path, body, all_headers)

        return await self.resilience.call(
            service,
            attempt,
            idempotent=idempotent,
            timeout=timeout,
            name=f"{method} {service}{path}",
        )

    async def _send(
        self,
        instance: Instance,
        method: str,
        path: str,
        body: bytes | None,
        headers: Mapping[str, str],
    ) -> Representation:
        session = self._open_session()
        url = instance.url(self._scheme) + path  # Instance.url brackets an IPv6 host
        try:
            async with session.request(
                method, url, data=body, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                response_headers = _joined(response.headers)
                content = await read_body(response, self.max_body_bytes)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, ConnectionRefusedError):
                self.locator.mark_failed(instance)
                raise ServiceUnavailableError(
                    instance.service, f"cannot connect to {instance.address}: {exc.os_error}"
                ) from exc
            raise ServiceUnavailableError(
                instance.service, f"connection to {instance.address} failed: {exc}"
            ) from exc
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
            raise RemoteServerError(
                instance.service, f"invalid HTTP response from {instance.address}: {exc}"
            ) from exc
        except ResponseLimitError as exc:
            raise RemoteServerError(
                instance.service, f"response from {instance.address} refused: {exc}"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ServiceUnavailableError(
                instance.service, f"connection to {instance.address} failed: {exc!r}"
            ) from exc
        if status >= 400:
            raise _remote_error(
                instance.service, status, response_headers.get("content-type", ""), content
            )
        if 300 <= status < 400 and not (status == 304 and _is_conditional(headers)):
            where = response_headers.get("location", "nowhere")
            raise RemoteError(
                instance.service,
                f"redirect to {where[:200]} not followed ({method} {path[:200]})",
                status=status,
            )
        return Representation(instance.service, status, response_headers, content)

    async def get(self, service: str, path: str, **options: Any) -> Representation:
        return await self.request(service, "GET", path, **options)

    async def post(self, service: str, path: str, **options: Any) -> Representation:
        return await self.request(service, "POST", path, **options)

    async def put(self, service: str, path: str, **options: Any) -> Representation:
        return await self.request(service, "PUT", path, **options)

    async def delete(self, service: str, path: str, **options: Any) -> Representation:
        return await self.request(service, "DELETE", path, **options)

    async def follow(
        self, representation: Representation, rel: str, **options: Any
    ) -> Representation:
        """Perform the action a representation links as ``rel`` (level 3).

        The link supplies the URL and the method; the client knows neither in advance.
        """
        links = representation.links
        link = links.get(rel)
        if link is None:
            raise LinkNotFoundError(rel, sorted(links))
        parts = urlsplit(link.href)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        return await self.request(representation.service, link.method, path, **options)
