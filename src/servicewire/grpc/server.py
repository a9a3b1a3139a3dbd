"""gRPC server bootstrap: health, reflection, our interceptors, graceful shutdown.

    server = Server(port=50051)
    server.add_service(add_EchoServiceServicer_to_server, EchoServicer(),
                       echo_pb2.DESCRIPTOR.services_by_name["EchoService"])
    async with server:                       # started; health SERVING; registered
        await server.wait_for_termination()  # until stop() (e.g. from a signal handler)

    asyncio.run(server.serve())              # or: all of it, until SIGTERM/SIGINT

Shutdown order matters for callers: deregister from discovery and report NOT_SERVING
first (new calls go elsewhere), then stop accepting and give in-flight calls ``grace``
seconds to finish, then cancel what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import Message as ProtoMessage
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio  # the public name of the asyncio servicer
from grpc_reflection.v1alpha import reflection

from servicewire.discovery import Instance
from servicewire.grpc.interceptors import ServerContextInterceptor
from servicewire.grpc.text import unsafe_field

if TYPE_CHECKING:
    from servicewire.discovery.redis import RedisRegistry, Registration
    from servicewire.security.tls import TLSConfig

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class _Malformed:
    """Stands in for a request refused before its handler: unparseable, or unsafe text."""

    def __init__(self, reason: str = "is not a valid protobuf message") -> None:
        self.reason = reason


_MALFORMED = _Malformed()


async def _refuse(context: grpc.aio.ServicerContext, method: str, why: _Malformed) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request to {method} {why.reason}")


class MalformedRequestGuard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Unparseable requests, and requests with unsafe text, get INVALID_ARGUMENT.

    grpc.aio parses requests before any interceptor's behaviour runs, and answers a
    parse failure with UNKNOWN and the parser's exception text. This guard, innermost,
    parses leniently and lets the call refuse the request as the client's error. A
    string field holding NUL (which protobuf accepts, and PostgreSQL does not) is
    refused the same way, naming the field (:mod:`servicewire.grpc.text`).
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer
        method = details.method

        def lenient(raw: bytes) -> Any:
            try:
                request = parse(raw)
            except Exception:  # any parser error means the same: not a valid request
                return _MALFORMED
            # No 0x00 byte on the wire, no NUL in any string: most requests skip the walk
            # (and a surrogate, not being UTF-8, never parses).
            unsafe = None
            if b"\x00" in raw and isinstance(request, ProtoMessage):
                unsafe = unsafe_field(request)
            if unsafe is not None:
                return _Malformed(f"field {unsafe[0]}: {unsafe[1]}")
            return request

        common = {
            "request_deserializer": lenient,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary or handler.unary_stream:
            behavior = handler.unary_unary or handler.unary_stream

            async def unary_in(request: Any, context: grpc.aio.ServicerContext) -> Any:
                if isinstance(request, _Malformed):
                    await _refuse(context, method, request)
                return await behavior(request, context)

            async def unary_in_stream_out(
                request: Any, context: grpc.aio.ServicerContext
            ) -> AsyncIterator[Any]:
                if isinstance(request, _Malformed):
                    await _refuse(context, method, request)
                result = behavior(request, context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                else:
                    await result

            if handler.unary_unary:
                return grpc.unary_unary_rpc_method_handler(unary_in, **common)
            return grpc.unary_stream_rpc_method_handler(unary_in_stream_out, **common)
        # Streaming requests: each message is checked as it is read.
        behavior = handler.stream_unary or handler.stream_stream

        def each(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, _Malformed):
                        await _refuse(context, method, request)
                    yield request

            return checked()

        async def stream_in(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
            return await behavior(each(requests, context), context)

        async def stream_in_stream_out(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            result = behavior(each(requests, context), context)
            if inspect.isasyncgen(result):
                async for item in result:
                    yield item
            else:
                await result

        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(stream_in, **common)
        return grpc.stream_stream_rpc_method_handler(stream_in_stream_out, **common)


class Server:
    """A ``grpc.aio`` server with the standard services and Servicewire's interceptor."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grace: float = 5.0,
        health: bool = True,
        reflection: bool = True,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        options: Sequence[tuple[str, Any]] = (),
        registry: RedisRegistry | None = None,
        service_name: str | None = None,
        ttl: float = 10.0,
        tls: TLSConfig | None = None,
    ) -> None:
        self.host = host
        self.tls = tls
        """Serve TLS (mutual when ``tls.require_client_cert``) instead of plaintext."""
        self.port = port
        self.grace = grace
        self._server = grpc.aio.server(
            # The guard goes innermost: its lenient parser is the one grpc ends up using.
            interceptors=[ServerContextInterceptor(), *interceptors, MalformedRequestGuard()],
            options=list(options),
        )
        self._services: list[str] = []
        self._health = health_aio.HealthServicer() if health else None
        self._reflection = reflection
        self._registry = registry
        self._service_name = service_name
        self._ttl = ttl
        self._registration: Registration | None = None
        if self._health is not None:
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)

    @property
    def grpc_server(self) -> grpc.aio.Server:
        return self._server

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def add_service(
        self,
        register: Callable[[Any, grpc.aio.Server], None],
        servicer: Any,
        service: Any,
    ) -> None:
        """Add ``servicer`` with its generated ``add_..._to_server`` function.

        ``service`` is the ServiceDescriptor (``pb2.DESCRIPTOR.services_by_name[...]``) or
        its full name; health and reflection report it.
        """
        register(servicer, self._server)
        self._services.append(service if isinstance(service, str) else service.full_name)

    async def start(self) -> int:
        """Bind, start serving and register; returns the bound port."""
        names = list(self._services)
        if self._health is not None:
            names.append(HEALTH_SERVICE)
        if self._reflection:
            names.append(reflection.SERVICE_NAME)
            reflection.enable_server_reflection(names, self._server)
        if self.tls is not None:
            from servicewire.grpc.auth import server_credentials

            creds = server_credentials(self.tls)
            self.port = self._server.add_secure_port(f"{self.host}:{self.port}", creds)
        else:
            self.port = self._server.add_insecure_port(f"{self.host}:{self.port}")
        await self._server.start()
        if self._health is not None:
            await self._health.set("", health_pb2.HealthCheckResponse.SERVING)
            for name in self._services:
                await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if self._registry is not None:
            name = self._service_name or (self._services[0] if self._services else "grpc")
            self._registration = self._registry.register(
                Instance(name, self.host, self.port), ttl=self._ttl
            )
            await self._registration.start()
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Graceful shutdown: deregister, NOT_SERVING, drain for ``grace`` s, stop."""
        if self._registration is not None:
            await self._registration.stop()
            self._registration = None
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        await self._server.stop(self.grace if grace is None else grace)

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Start, serve until SIGTERM/SIGINT (or ``stop`` is set), then shut down gracefully.

        The usual main of a gRPC service: ``asyncio.run(server.serve())``.
        """
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        handled: list[signal.Signals] = []
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, stop.set)
                    handled.append(signum)
        await self.start()
        try:
            await stop.wait()
        finally:
            for signum in handled:
                loop.remove_signal_handler(signum)
            await self.stop()

    async def wait_for_termination(self, timeout: float | None = None) -> bool:
        return bool(await self._server.wait_for_termination(timeout))

    async def __aenter__(self) -> Server:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
