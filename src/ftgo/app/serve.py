"""``ftgo serve order|consumer|restaurant``: one FTGO service as its own process.

    ftgo serve order --db postgresql://postgres@127.0.0.1/ftgo_order \\
        --transport amqp://guest:guest@127.0.0.1:5672/ --http-port 8081 --grpc-port 9081

The process runs the service's message consumers, its REST API on ``--http-port`` and
(Order and Restaurant Services) its gRPC API on ``--grpc-port``, plus the outbox relay
unless ``--no-relay`` says a separate ``servicewire relay`` process does it. SIGTERM or
Ctrl-C stops taking requests and messages, finishes those in flight, and exits.

It runs on uvloop with uvicorn's httptools parser (both from the ``rest`` extra) and
says so when ready::

    order-service ready http=http://127.0.0.1:8081 grpc=127.0.0.1:9081 \\
        loop=uvloop http-parser=httptools
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from servicewire import Service, ServiceOptions

log = logging.getLogger("ftgo.app.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("service", choices=["order", "consumer", "restaurant"])
    parser.add_argument("--db", required=True, help="the service's own database URL")
    parser.add_argument("--transport", required=True, help="transport URL shared by all three")
    parser.add_argument("--http-port", type=int, default=0)
    parser.add_argument("--grpc-port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--no-relay", action="store_true", help="a separate relay process runs")
    parser.add_argument(
        "--validation",
        choices=["async", "sync"],
        default="async",
        help="order: validate by messages (async) or by REST+gRPC calls (sync)",
    )
    parser.add_argument("--consumer-http", default="", help="sync: host:port of Consumer REST")
    parser.add_argument("--restaurant-grpc", default="", help="sync: host:port of Restaurant gRPC")
    parser.add_argument(
        "--registry",
        default="",
        help="sync: redis:// URL of a discovery registry (instead of addresses)",
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--journal",
        action="store_true",
        help="record sends and receives in the service's database (for `servicewire trace`)",
    )


async def serve(
    args: argparse.Namespace, ready: Callable[[dict[str, str]], None] | None = None
) -> int:
    # REST and gRPC come with the rest and grpc extras; importing them here keeps
    # `ftgo demo` working on a core-only install.
    from ftgo.app.web import HttpServer, loop_name
    from servicewire.grpc import Server

    options = ServiceOptions(relay=not args.no_relay)
    if getattr(args, "journal", False):
        from servicewire.telemetry import sql_journal

        options = replace(options, journal=sql_journal(args.db))
    grpc_server: Server | None = None
    closers: list[Any] = []
    if args.service == "consumer":
        from ftgo.consumer.rest import build_consumer_app
        from ftgo.consumer.service import create_consumer_service

        service: Service = create_consumer_service(args.db, args.transport, options)
        app = build_consumer_app(service)
    elif args.service == "restaurant":
        from ftgo.generated.restaurant.v1 import restaurant_pb2_grpc
        from ftgo.restaurant.grpc import SERVICE, RestaurantServicer
        from ftgo.restaurant.rest import build_restaurant_app
        from ftgo.restaurant.service import create_restaurant_service

        service = create_restaurant_service(args.db, args.transport, options)
        app = build_restaurant_app(service)
        grpc_server = Server(host=args.host, port=args.grpc_port, interceptors=_interceptors())
        grpc_server.add_service(
            restaurant_pb2_grpc.add_RestaurantServiceServicer_to_server,
            RestaurantServicer(service),
            SERVICE,
        )
    else:
        from ftgo.generated.order.v1 import order_pb2_grpc
        from ftgo.order.grpc import SERVICE, OrderServicer
        from ftgo.order.rest import build_order_app
        from ftgo.order.service import create_order_service

        validator = None
        if args.validation == "sync":
            validator, closers = _sync_validator(args)
        service, orders = create_order_service(
            args.db, args.transport, validator=validator, options=options
        )
        app = build_order_app(orders)
        grpc_server = Server(host=args.host, port=args.grpc_port, interceptors=_interceptors())
        grpc_server.add_service(
            order_pb2_grpc.add_OrderServiceServicer_to_server, OrderServicer(orders), SERVICE
        )

    await service.start()
    http = HttpServer(app, host=args.host, port=args.http_port)
    await http.start()
    addresses = {"http": http.url}
    if grpc_server is not None:
        port = await grpc_server.start()
        addresses["grpc"] = f"{args.host}:{port}"
    # What it runs on, read back from the running loop and the server: the fast stack
    # (uvloop, httptools) unless one was missing (see ftgo.app.web).
    stack = f"loop={loop_name()} http-parser={http.parser}"
    print(
        f"{service.name} ready " + " ".join(f"{k}={v}" for k, v in addresses.items()) + f" {stack}",
        flush=True,
    )
    if ready is not None:
        ready(addresses)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("%s stopping", service.name)
        await http.stop()
        if grpc_server is not None:
            await grpc_server.stop(2.0)
        await service.stop()
        if options.journal is not None:
            options.journal.close()  # write what is pending
        for closer in closers:
            await closer.close()
    return 0


def _interceptors() -> list[Any]:
    from servicewire.grpc import TracingServerInterceptor

    return [TracingServerInterceptor()]  # a span per call while tracing is on


def _sync_validator(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from ftgo.order.sync_validation import CONSUMER, RESTAURANT, SyncValidator
    from servicewire.discovery import Locator, StaticResolver
    from servicewire.grpc import GrpcClient
    from servicewire.resilience import Resilience
    from servicewire.rest import RestClient

    if args.registry:
        from servicewire.discovery import RedisRegistry

        locator = Locator(RedisRegistry(args.registry))
    else:
        locator = Locator(
            StaticResolver({CONSUMER: [args.consumer_http], RESTAURANT: [args.restaurant_grpc]})
        )
    from servicewire.telemetry import breaker_listener

    resilience = Resilience(
        timeout=2.0, failure_threshold=3, reset_timeout=10.0, on_state_change=breaker_listener
    )
    rest = RestClient(locator, resilience=resilience)
    grpc = GrpcClient(locator, resilience=resilience)
    return SyncValidator(rest, grpc), [rest, grpc]


def main(args: argparse.Namespace) -> int:
    from ftgo.app.web import run
    from servicewire.telemetry import configure_logging

    configure_logging(service=f"{args.service}-service", level=args.log_level)
    return run(serve(args))
