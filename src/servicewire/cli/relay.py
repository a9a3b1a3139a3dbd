"""``servicewire relay``: run a message relay as its own process, or show its status.

    servicewire relay --db postgresql://postgres@127.0.0.1/orders \\
        --transport amqp://guest:guest@127.0.0.1:5672/ --mode postgres-wal
    servicewire relay status --db postgresql://postgres@127.0.0.1/orders
    servicewire relay --mode dynamodb-streams --db dynamodb://127.0.0.1:8000?region=us-east-1 \\
        --transport redis://127.0.0.1:6379/0

SIGTERM (or Ctrl-C) stops the relay after the batch in flight is published and recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from servicewire.relay import Relay
    from servicewire.transports.base import Transport


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "relay",
        help=(
            "publish outbox messages (polling, postgres-wal, mysql-binlog, dynamodb-streams); "
            "'status' reports"
        ),
        description="Run a message relay, or with 'status' show backlog and lag.",
    )
    parser.add_argument("action", nargs="?", choices=["run", "status"], default="run")
    parser.add_argument(
        "--db",
        required=True,
        help="database URL (postgresql://, mysql://, sqlite:///, dynamodb://)",
    )
    parser.add_argument("--transport", help="transport URL (amqp://, redis://, nats://, ...)")
    parser.add_argument(
        "--mode",
        choices=["polling", "postgres-wal", "mysql-binlog", "dynamodb-streams"],
        default="polling",
    )
    parser.add_argument("--name", default="relay", help="relay name: shard rows, slot, lock")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--poll-interval", type=float, default=0.01, help="polling: seconds")
    parser.add_argument(
        "--max-poll-interval",
        type=float,
        default=2.0,
        help="polling: idle polls back off up to this many seconds (= --poll-interval: fixed)",
    )
    parser.add_argument("--shards", type=int, default=None, help="polling: outbox shards")
    parser.add_argument("--listen", action="store_true", help="polling on PostgreSQL: LISTEN")
    parser.add_argument(
        "--lease-ttl",
        type=float,
        default=5.0,
        help=(
            "polling, mysql-binlog, dynamodb-streams: seconds a stopped owner keeps "
            "ownership (fencing)"
        ),
    )
    parser.add_argument("--cleanup", choices=["delete", "mark"], default="delete")
    parser.add_argument("--retention", type=float, default=3600.0, help="mark: keep seconds")
    parser.add_argument(
        "--insert-then-delete",
        action="store_true",
        help="postgres-wal: writers delete their rows (write_messages(delete_after_insert=True))",
    )
    parser.add_argument("--json", action="store_true", help="status: print JSON")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port"
    )
    parser.add_argument("--metrics-host", default="127.0.0.1")


def run(args: argparse.Namespace) -> int:
    from servicewire.telemetry.logs import configure_logging

    configure_logging(service=f"relay-{args.name}", level=args.log_level)  # JSON unless a TTY
    from servicewire.errors import ServicewireError

    try:
        if args.action == "status":
            return asyncio.run(_status(args))
        if not args.transport:
            print("servicewire relay: --transport is required", file=sys.stderr)
            return 2
        return asyncio.run(_relay(args))
    except ServicewireError as exc:
        print(f"servicewire relay: {exc}", file=sys.stderr)
        return 1


def _options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"name": args.name, "batch_size": args.batch_size}
    if args.mode == "polling":
        options.update(
            poll_interval=args.poll_interval,
            max_poll_interval=args.max_poll_interval,
            listen=args.listen,
            cleanup=args.cleanup,
            retention=args.retention,
            lease_ttl=args.lease_ttl,
        )
        if args.shards:
            options["shards"] = args.shards
    if args.mode == "mysql-binlog":
        options["lease_ttl"] = args.lease_ttl
    if args.mode == "dynamodb-streams":
        options.update(
            lease_ttl=args.lease_ttl,
            poll_interval=max(args.poll_interval, 0.05),  # GetRecords is a paid request
            max_poll_interval=args.max_poll_interval,
        )
    if args.mode == "postgres-wal" and args.insert_then_delete:
        options["delete_published"] = False
    return options


async def _relay(args: argparse.Namespace) -> int:
    from servicewire.errors import ServicewireError
    from servicewire.relay import create_relay
    from servicewire.storage.database import create_engine, display_url
    from servicewire.storage.dynamodb import is_dynamodb_url
    from servicewire.transports import connect_transport
    from servicewire.urls import redact

    if (args.mode == "dynamodb-streams") != is_dynamodb_url(args.db):
        raise ServicewireError("a dynamodb:// database needs --mode dynamodb-streams, and back")
    if args.mode == "dynamodb-streams":
        # DynamoDB is not SQL: the relay takes the URL, and there is no engine.
        transport = await connect_transport(args.transport)
        relay = create_relay(args.mode, args.db, transport, **_options(args))
        return await _foreground(args, relay, transport, redact(args.db))
    engine = create_engine(args.db)
    try:
        transport = await connect_transport(args.transport)
        relay = create_relay(args.mode, engine, transport, **_options(args))
        return await _foreground(args, relay, transport, display_url(args.db), engine)
    finally:
        await engine.dispose()


async def _foreground(
    args: argparse.Namespace,
    relay: Relay,
    transport: Transport,
    shown_db: str,
    engine: AsyncEngine | None = None,
) -> int:
    """Run ``relay`` until SIGTERM/SIGINT, with optional metrics; close the transport."""
    from servicewire.urls import redact

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, relay.request_stop)
    log = logging.getLogger("servicewire.relay")
    metrics = None
    try:
        if args.metrics_port is not None:
            from servicewire.exposition import serve_metrics

            engines = [engine] if engine is not None else []
            metrics = await serve_metrics(
                args.metrics_port, host=args.metrics_host, engines=engines
            )
            log.info(
                "relay %s: metrics on http://%s:%d/metrics",
                args.name,
                args.metrics_host,
                metrics.port,
            )
        log.info("relay %s (%s): %s -> %s", args.name, args.mode, shown_db, redact(args.transport))
        await relay.run()
    finally:
        if metrics is not None:
            await metrics.close()
        await transport.close()
    log.info(
        "relay %s stopped: published %d, moved aside %d",
        args.name,
        relay.published,
        relay.moved_aside,
    )
    return 0


async def _status(args: argparse.Namespace) -> int:
    from servicewire.storage.dynamodb import is_dynamodb_url

    if is_dynamodb_url(args.db):
        return await _status_dynamodb(args)
    from servicewire.relay.status import format_status, relay_status
    from servicewire.storage.database import create_engine

    engine = create_engine(args.db)
    try:
        status = await relay_status(engine)
    finally:
        await engine.dispose()
    print(json.dumps(status.to_dict(), indent=2) if args.json else format_status(status))
    return 0


async def _status_dynamodb(args: argparse.Namespace) -> int:
    from servicewire.relay.dynamodb_streams import dynamodb_status
    from servicewire.storage.dynamodb import DynamoConfig

    status = await dynamodb_status(DynamoConfig.from_url(args.db))
    if args.json:
        print(json.dumps(status, indent=2))
        return 0
    lease = status["lease"] or {}
    print(f"table {status['table']}")
    print(f"  lease: {lease.get('owner') or 'free'} (epoch {lease.get('epoch', 0)})")
    for shard, state in status["shards"].items():
        done = "finished" if state["finished"] else f"at {state['seq']}"
        print(f"  shard {shard}: {done}, checkpointed {state['age']}s ago")
    print(f"  dead letters: {status['dead']}")
    return 0
