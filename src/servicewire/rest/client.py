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

The transport is our small keep-alive client, :mod:`servicewire.rest.http`, chosen by
measurement over aiohttp and httpx (docs/rest.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

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
from servicewire.rest.http import HttpPool, HttpProtocolError
from servicewire.rest.negotiation import is_json
from servicewire.rest.problems import PROBLEM_JSON
from servicewire.security.tls import TLSConfig

if TYPE_CHECKING:
    import ssl

    from servicewire.security.identity import TokenIssuer

_ACCEPT = "application/hal+json, application/json;q=0.9, application/problem+json;q=0.5"


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


DEFAULT_RETRY = CallRetryPolicy(
    attempts=3, initial_backoff=0.05, max_backoff=1.0, retryable=is_transient
)


class RestClient:
    """A resilient HTTP/1.1 keep-alive client for services found through discovery.

    ``services`` is a :class:`Locator`, any :class:`Resolver`, or a static mapping of
    service names to addresses. One client holds one connection pool; share it.
    Open connections per instance follow the number of concurrent calls, which the
    bulkhead caps; ``max_idle_connections`` bounds how many stay open between bursts.
    """

    def __init__(
        self,
        services: Locator | Resolver | Mapping[str, Sequence[str]],
        *,
        resilience: Resilience | None = None,
        max_idle_connections: int = 256,
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
        self._auth = auth
        context = tls.client_context() if isinstance(tls, TLSConfig) else tls
        self._pool = HttpPool(max_idle_per_host=max_idle_connections, ssl_context=context)

    async def close(self) -> None:
        await self._pool.close()

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
        body = orjson.dumps(json) if json is not None else None
        all_headers = dict(self._headers)
        if body is not None:
            all_headers["content-type"] = "application/json"
        if headers:
            all_headers.update(headers)
        if self._auth is not None:
            all_headers.update(self._auth.headers(service))  # audience: the service called
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        retry_stale = idempotent

        async def attempt(deadline: Deadline) -> Representation:
            instance = await self.locator.pick(service)
            return await self._send(instance, method, path, body, all_headers, retry_stale)

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
        retry_stale: bool,
    ) -> Representation:
        try:
            response = await self._pool.request(
                instance.host, instance.port, method, path, headers, body, retry_stale=retry_stale
            )
        except ConnectionRefusedError as exc:
            self.locator.mark_failed(instance)
            raise ServiceUnavailableError(
                instance.service, f"cannot connect to {instance.address}: {exc.strerror or exc}"
            ) from exc
        except (OSError, EOFError) as exc:
            raise ServiceUnavailableError(
                instance.service, f"connection to {instance.address} failed: {exc}"
            ) from exc
        except HttpProtocolError as exc:
            raise RemoteServerError(
                instance.service, f"invalid HTTP response from {instance.address}: {exc}"
            ) from exc
        if response.status >= 400:
            raise _remote_error(
                instance.service,
                response.status,
                response.headers.get("content-type", ""),
                response.body,
            )
        return Representation(instance.service, response.status, response.headers, response.body)

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
