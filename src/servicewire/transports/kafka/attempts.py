"""Attempt counts that outlive a group member: the group's attempts record on Kafka.

Kafka keeps no delivery counter, so a member counts the deliveries it made. A poison
message nacked twice by one member would start again at attempt 1 on the next owner
of its partition, and a group that rebalances often would never dead-letter it. So
each nack also writes the partition's failed records and their counts to a small
topic of the group, ``<topic>.<group>.attempts``, and a member that is assigned a
partition reads them back before it delivers anything::

    log = AttemptsLog(address, attempts_topic("sw.orders", "billing"), producer, ensure, exists)
    await log.save(3, {1042: 2})          # partition 3: offset 1042 failed twice
    await log.load([3])                   # -> {3: {1042: 2}}: its next delivery is attempt 3

The attempts topic has as many partitions as the channel's topic; the record of data
partition ``p`` goes to attempts partition ``p``, keyed ``p``, and holds the whole
state of that partition (``{"<offset>": attempts}``), so the newest record is the only
one that matters: the topic is created compacted, and a reader fetches only the last
record of each partition. Counts of offsets below the partition's committed offset are
stale (their records were settled) and ignored by the subscription.

Why not the offset commit's metadata string, Kafka's usual place for such state: tansu,
the broker the tests run, accepts it and returns it empty.

The topic is created on the first nack only, so groups that never fail a message cost
nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from servicewire.transports.kafka.client import client_kwargs
from servicewire.transports.kafka.closing import stop_consumer
from servicewire.transports.kafka.options import KafkaAddress
from servicewire.urls import redact_text

log = logging.getLogger("servicewire.transports.kafka.transport")

_READ_TIMEOUT = 10.0


def attempts_topic(topic: str, group: str) -> str:
    """The attempts topic of our ``group`` on ``topic``: ``<topic>.<group>.attempts``."""
    return f"{topic}.{group}.attempts"


def encode(counts: dict[int, int]) -> bytes:
    return json.dumps({str(offset): n for offset, n in sorted(counts.items())}).encode()


def decode(raw: bytes | None) -> dict[int, int]:
    """The counts in one record; anything unreadable counts as none (never fatal)."""
    try:
        data = json.loads(raw or b"{}")
        return {int(offset): int(n) for offset, n in data.items() if int(n) > 0}
    except (ValueError, TypeError, AttributeError):
        return {}


class AttemptsLog:
    """Reads and writes the attempts record of one group on one topic."""

    def __init__(
        self,
        address: KafkaAddress,
        topic: str,
        producer: Callable[[], AIOKafkaProducer],
        ensure: Callable[[], Awaitable[object]],
        exists: Callable[[], Awaitable[bool]],
    ) -> None:
        self.address = address
        self.topic = topic
        self._producer = producer
        self._ensure = ensure
        self._exists = exists

    async def save(self, partition: int, counts: dict[int, int]) -> None:
        """Record the failed records of ``partition``; a failure is logged, not raised.

        Without the record the counts still hold on this member; only a rebalance
        before the next successful save would restart them.
        """
        try:
            async with asyncio.timeout(self.address.options.request_timeout_ms / 1000):
                await self._ensure()
                key = str(partition).encode()
                sent = await self._producer().send(
                    self.topic, encode(counts), key=key, partition=partition
                )
                await sent
        except (KafkaError, OSError, TimeoutError, AssertionError) as exc:
            log.warning(
                "kafka: attempt counts of %s[%d] not recorded: %s",
                self.topic,
                partition,
                redact_text(repr(exc)),
            )
        except Exception as exc:  # TransportError from ensure: the same, logged
            log.warning("kafka: attempt counts of %s not recorded: %s", self.topic, exc)

    async def load(self, partitions: Iterable[int]) -> dict[int, dict[int, int]]:
        """The newest counts of each of ``partitions`` (absent: nothing recorded)."""
        wanted = sorted(set(partitions))
        if not wanted or not await self._exists():
            return {}
        reader = AIOKafkaConsumer(**client_kwargs(self.address), enable_auto_commit=False)
        found: dict[int, dict[int, int]] = {}
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                await reader.start()
                tps = [TopicPartition(self.topic, p) for p in wanted]
                reader.assign(tps)
                ends = await reader.end_offsets(tps)
                pending = {tp for tp in tps if ends.get(tp)}
                for tp in pending:
                    reader.seek(tp, ends[tp] - 1)
                last: dict[TopicPartition, int] = {}
                deadline = time.monotonic() + _READ_TIMEOUT
                while pending and time.monotonic() < deadline:
                    batches = await reader.getmany(*pending, timeout_ms=200)
                    for tp, records in batches.items():
                        for record in records:
                            if record.offset >= last.get(tp, -1):
                                last[tp] = record.offset
                                found[tp.partition] = decode(record.value)
                            if record.offset >= ends[tp] - 1:
                                pending.discard(tp)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning(
                "kafka: attempt counts of %s not read (they restart at 1): %s",
                self.topic,
                redact_text(repr(exc)),
            )
        finally:
            with contextlib.suppress(Exception):
                await stop_consumer(reader)
        return {p: counts for p, counts in found.items() if counts}
