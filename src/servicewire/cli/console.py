"""``servicewire console --db URL [--db URL ...] --transport URL [--port N]``: the web console.

    servicewire console --db postgresql://postgres@127.0.0.1/ftgo_order \\
        --db postgresql://postgres@127.0.0.1/ftgo_consumer \\
        --db postgresql://postgres@127.0.0.1/ftgo_restaurant \\
        --transport amqp://guest:guest@127.0.0.1:5672/ --port 8090

Serves a read-only page (see :mod:`servicewire.console`) on 127.0.0.1 by default;
replaying a dead letter, after a confirmation, is its only action.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "console",
        help="serve the web console: services, backlog, relay lag, dead letters, sequences",
        description="A read-only web page over journals, outboxes and dead-letter channels.",
    )
    parser.add_argument(
        "--db", action="append", required=True, help="a service database (repeatable)"
    )
    parser.add_argument("--transport", required=True, help="transport URL (dead letters)")
    parser.add_argument(
        "--channel", action="append", default=[], help="also watch this channel's dead letters"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--log-level", default="INFO")


async def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from servicewire.console import ConsoleState, create_console_app
    from servicewire.rest import SERVER_KEEP_ALIVE_SECONDS

    state = ConsoleState(args.db, args.transport, channels=args.channel)
    await state.start()
    config = uvicorn.Config(
        create_console_app(state),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=SERVER_KEEP_ALIVE_SECONDS,
    )
    server = uvicorn.Server(config)
    print(f"servicewire console on http://{args.host}:{args.port}/", flush=True)
    try:
        await server.serve()
    finally:
        await state.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    from servicewire.errors import ServicewireError
    from servicewire.telemetry.logs import configure_logging

    configure_logging(service="console", level=args.log_level)
    try:
        return asyncio.run(_serve(args))
    except ServicewireError as exc:
        print(f"servicewire console: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
