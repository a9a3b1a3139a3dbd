"""``servicewire dlq list|show|replay --transport URL --channel C``: inspect and replay
dead letters.

    servicewire dlq list   --transport amqp://guest:guest@127.0.0.1/ --channel orders
    servicewire dlq show   --transport ... --channel ... --id 01a2...
    servicewire dlq replay --transport ... --channel ... --id 01a2...   (or --all)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from servicewire.messaging import headers as h
from servicewire.messaging.message import Message
from servicewire.pipeline.deadletter_replay import (
    dlq_channel_for,
    list_dead_letters,
    replay_dead_letters,
)
from servicewire.transports import connect_transport
from servicewire.urls import redact


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("dlq", help="inspect and replay dead letters")
    parser.add_argument("action", choices=["list", "show", "replay"])
    parser.add_argument("--transport", required=True, help="transport URL")
    parser.add_argument("--channel", required=True, help="the channel (or its .dlq channel)")
    parser.add_argument("--id", action="append", default=[], help="message id (repeatable)")
    parser.add_argument("--all", action="store_true", help="replay every dead letter")
    parser.add_argument("--idle", type=float, default=1.0, help="seconds without a message = end")
    parser.add_argument("--format", choices=["text", "json"], default="text")


def _summary(message: Message) -> str:
    get = message.headers.get
    return (
        f"{message.id}  {message.type or '(untyped)'} {message.version}  "
        f"attempts={get(h.DLQ_ATTEMPTS, '?')}  from={get(h.DLQ_CHANNEL, '?')}  "
        f"reason={get(h.DLQ_REASON, '?')}"
    )


def _detail(message: Message) -> dict[str, Any]:
    try:
        payload: Any = message.payload.decode()
    except UnicodeDecodeError:
        payload = message.payload.hex()
    return {"id": message.id, "headers": message.headers.to_dict(), "payload": payload}


def _progress(count: int) -> None:
    if count % 100 == 0:
        print(f"  ... {count} read", file=sys.stderr, flush=True)


async def _run(args: argparse.Namespace) -> int:
    transport = await connect_transport(args.transport)
    try:
        channel = dlq_channel_for(args.channel)
        if args.action == "replay":
            if not args.id and not args.all:
                print("replay needs --id ID (repeatable) or --all", file=sys.stderr)
                return 2
            ids = None if args.all else set(args.id)
            done = await replay_dead_letters(
                transport, channel, ids=ids, idle=args.idle, progress=_progress
            )
            for message in done:
                print(f"replayed {message.id} to {message.headers.get(h.DLQ_CHANNEL)}")
            print(f"{len(done)} replayed")
            missing = (ids or set()) - {m.id for m in done}
            return 1 if missing else 0
        found = await list_dead_letters(transport, channel, idle=args.idle, progress=_progress)
        if args.action == "show":
            found = [m for m in found if not args.id or m.id in args.id]
            print(json.dumps([_detail(m) for m in found], indent=2))  # show is always full
            return 0 if found else 1
        if args.format == "json":
            print(json.dumps([_detail(m) for m in found], indent=2))
        else:
            print(f"{len(found)} dead letter(s) on {channel} via {redact(args.transport)}")
            for message in found:
                print(_summary(message))
        return 0
    finally:
        await transport.close()


def run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))
