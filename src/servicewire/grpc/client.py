"""The gRPC client: service names through discovery, every call resilient, errors typed.

    async with GrpcClient({"echo": ["127.0.0.1:50051"]}) as client:
        reply = await client.unary("echo", EchoServiceStub, "Echo", EchoRequest(message="hi"),
                                   timeout=1.0, idempotent=True)
        async for step in client.server_stream("echo", EchoServiceStub, "Countdown", request):
            ...
        async for reply in client.bidi_stream("echo", EchoServiceStub, "Chat", requests()):
            ...

A unary call gets the whole :class:`~servicewire.resilience.Resilience` treatment:
deadline (sent as the gRPC timeout), retries only when ``idempotent=True`` and the error
is transient (UNAVAILABLE), a circuit breaker and a bulkhead per service. A stream
holds a bulkhead slot while open, passes the breaker, is bounded by its deadline, and
is never retried (part of it may have been consumed). The correlation id, and the
current trace context and baggage as OpenTelemetry's configured propagators write them,
go out as metadata on every call (:mod:`servicewire.grpc.context`).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from servicewire.discovery import Instance, Locator, Resolver, StaticResolver
from servicewire.grpc import context as call_context
from servicewire.grpc.status import error_from_rpc
from servicewire.resilience import (
    CallRetryPolicy,
    Deadline,
    Resilience,
    ServiceUnavailableError,
    counts_as_failure,
    is_transient,
)

if TYPE_CHECKING:
    from servicewire.security.identity import TokenIssuer
    from servicewire.security.tls import TLSConfig

DEFAULT_RETRY = CallRetryPolicy(
    attempts=3, initial_backoff=0.05, max_backoff=1.0, retryable=is_transient
)


class GrpcClient:
    """Channels to the instances of the services it calls, one per address, reused."""

    def __init__(
        self,
        services: Locator | Resolver | Mapping[str, Sequence[str]],
        *,
        resilience: Resilience | None = None,
        options: Sequence[tuple[str, Any]] = (),
        auth: TokenIssuer | None = None,
        tls: TLSConfig | None = None,
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
        self._options = list(options)
        self._auth = auth
        self._credentials: grpc.ChannelCredentials | None = None
        if tls is not None:
            from servicewire.grpc.auth import channel_credentials

            self._credentials = channel_credentials(tls)
            if tls.server_name:
                self._options.append(("grpc.ssl_target_name_override", tls.server_name))
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, type], Any] = {}

    def channel(self, instance: Instance) -> grpc.aio.Channel:
        channel = self._channels.get(instance.address)
        if channel is None:
            if self._credentials is not None:
                channel = grpc.aio.secure_channel(
                    instance.address, self._credentials, options=self._options
                )
            else:
                channel = grpc.aio.insecure_channel(instance.address, options=self._options)
            self._channels[instance.address] = channel
        return channel

    def _method(self, instance: Instance, stub_class: type, method: str) -> Any:
        key = (instance.address, stub_class)
        stub = self._stubs.get(key)
        if stub is None:
            stub = stub_class(self.channel(instance))
            self._stubs[key] = stub
        return getattr(stub, method)

    async def close(self) -> None:
        channels, self._channels = self._channels, {}
        self._stubs.clear()
        for channel in channels.values():
            await channel.close()

    async def __aenter__(self) -> GrpcClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def unary(
        self,
        service: str,
        stub_class: type,
        method: str,
        request: Any,
        *,
        timeout: float | None = None,
        idempotent: bool = False,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> Any:
        """Call a unary method of ``service``; ``idempotent=True`` allows retries."""
        label = f"{service}/{method}"

        async def attempt(deadline: Deadline) -> Any:
            instance = await self.locator.pick(service)
            call = self._method(instance, stub_class, method)
            try:
                return await call(
                    request,
                    timeout=deadline.remaining(),
                    metadata=call_context.outgoing_metadata((*self._auth_of(service), *metadata)),
                )
            except grpc.aio.AioRpcError as exc:
                raise self._error(instance, exc, label, deadline) from None

        return await self.resilience.call(
            service, attempt, idempotent=idempotent, timeout=timeout, name=label, self_timed=True
        )

    def _auth_of(self, service: str) -> tuple[tuple[str, str], ...]:
        """The bearer token for ``service`` (its audience), when this client has an issuer."""
        if self._auth is None:
            return ()
        return (("authorization", f"Bearer {self._auth.token(service)}"),)

    def _error(
        self, instance: Instance, exc: grpc.aio.AioRpcError, label: str, deadline: Deadline
    ) -> Exception:
        error = error_from_rpc(instance.service, exc, label, deadline.timeout)
        if isinstance(error, ServiceUnavailableError) and exc.code() is grpc.StatusCode.UNAVAILABLE:
            self.locator.mark_failed(instance)
        return error

    async def _stream(
        self,
        service: str,
        stub_class: type,
        method: str,
        argument: Any,
        timeout: float | None,
        metadata: Sequence[tuple[str, str]],
    ) -> AsyncIterator[Any]:
        label = f"{service}/{method}"
        deadline = Deadline.effective(timeout if timeout is not None else self.resilience.timeout)
        breaker = self.resilience.breaker(service)
        async with self.resilience.bulkhead(service):
            breaker.before_call()
            instance = await self.locator.pick(service)
            call = self._method(instance, stub_class, method)(
                argument,
                timeout=deadline.remaining(),
                metadata=call_context.outgoing_metadata((*self._auth_of(service), *metadata)),
            )
            try:
                async for item in call:
                    yield item
            except grpc.aio.AioRpcError as exc:
                error = self._error(instance, exc, label, deadline)
                breaker.record_failure(error)
                raise error from None
            except BaseException:
                # Cancelled, or the consumer stopped iterating: no verdict on the service.
                call.cancel()
                breaker.release()
                raise
            breaker.record_success()

    def server_stream(
        self,
        service: str,
        stub_class: type,
        method: str,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> AsyncIterator[Any]:
        """Iterate the responses of a server-streaming method."""
        return self._stream(service, stub_class, method, request, timeout, metadata)

    def bidi_stream(
        self,
        service: str,
        stub_class: type,
        method: str,
        requests: AsyncIterable[Any],
        *,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] = (),
    ) -> AsyncIterator[Any]:
        """Send ``requests`` and iterate the responses of a bidirectional method."""
        return self._stream(service, stub_class, method, requests, timeout, metadata)
