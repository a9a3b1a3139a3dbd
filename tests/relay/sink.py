"""``testsink://host:port/db?key=K``: a transport that appends to a Redis list.

Relay subprocesses publish through it and the test reads the list, so messages cross
process boundaries without depending on the broker transports under development.
Publishing is confirmed by Redis' reply; a batch is one pipelined round trip.

Options for ownership tests: ``by=A`` tags every entry with who published it, and
``delay=0.3`` makes every publish call take that much longer after Redis confirmed it
(a slow broker: a batch of many waves stays in flight long enough to SIGSTOP it)::

    testsink://127.0.0.1:6379/0?key=K&by=A&delay=0.3
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from servicewire.errors import TransportError
from servicewire.messaging.message import Message
from servicewire.transports import register_scheme
from servicewire.transports.base import Capabilities, Subscription, Transport


class ListSinkTransport(Transport):
    scheme = "testsink"
    capabilities = Capabilities(
        durable=True,
        persistent=False,
        ordered_per_key=True,
        competing_consumers=False,
        exactly_once=False,
        replays_history=True,
    )

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.key = query["key"][0]
        self.by = query.get("by", [""])[0]
        self.delay = float(query.get("delay", ["0"])[0])
        self.redis_url = f"redis://{parts.netloc}{parts.path}"
        self.client: Any = None

    async def connect(self) -> None:
        import redis.asyncio as redis

        self.client = redis.from_url(self.redis_url)

    def encode(self, message: Message) -> str:
        item = {"id": message.id, "headers": message.headers.to_dict()}
        if self.by:
            item["by"] = self.by
        return json.dumps(item)

    async def _send(self, message: Message) -> None:
        await self.client.rpush(self.key, self.encode(message))
        await self._confirm_slowly()

    async def _send_batch(self, messages: Sequence[Message]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for message in messages:
            pipe.rpush(self.key, self.encode(message))
        await pipe.execute()
        await self._confirm_slowly()

    async def _confirm_slowly(self) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)

    async def declare(self, channel: str, group: str) -> None:
        return None

    async def subscribe(self, channel: str, group: str, *, prefetch: int = 64) -> Subscription:
        raise TransportError("testsink is publish-only; read the Redis list")

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()


def register() -> None:
    register_scheme("testsink", "tests.relay.sink:ListSinkTransport")


async def read_sink(client: Any, key: str) -> list[dict[str, Any]]:
    """Everything published to the sink so far, in publish order."""
    return [json.loads(item) for item in await client.lrange(key, 0, -1)]
