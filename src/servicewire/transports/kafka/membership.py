"""A member's place in a Kafka consumer group: the group it joins and its rebalances.

Kafka itself deals partitions to the members of a consumer group (the group
coordinator on the broker runs the rebalance); this module joins the group and passes
each rebalance on to the member::

    consumer = group_consumer(address, "sw.orders", "billing", max_message_size)
    consumer.subscribe(["sw.orders"], listener=Rebalance(on_assigned, on_revoked))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from servicewire.transports.kafka.client import client_kwargs
from servicewire.transports.kafka.options import KafkaAddress


def kafka_group_id(topic: str, group: str) -> str:
    """The Kafka consumer group of our ``group`` on ``topic``: ``<topic>.<group>``.

    Kafka group ids are global, while ours belong to a channel. One Kafka group per
    channel keeps a member joining ``orders`` from stopping every other channel that
    uses the same group name for a rebalance.
    """
    return f"{topic}.{group}"


def group_consumer(
    address: KafkaAddress, topic: str, group: str, max_message_size: int
) -> AIOKafkaConsumer:
    """A consumer (not started) that joins our ``group`` on ``topic`` and never auto-commits.

    Auto-commit is off: it would commit records whose handler has not finished.
    """
    options = address.options
    return AIOKafkaConsumer(
        **client_kwargs(address),
        group_id=kafka_group_id(topic, group),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=options.session_timeout_ms,
        heartbeat_interval_ms=options.heartbeat_interval_ms,
        max_poll_interval_ms=options.max_poll_interval_ms,
        rebalance_timeout_ms=options.rebalance_timeout_ms,
        fetch_max_wait_ms=options.fetch_max_wait_ms,
        max_partition_fetch_bytes=fetch_bytes(max_message_size),
    )


def fetch_bytes(max_message_size: int) -> int:
    """Most bytes one fetch brings for one partition: room for two of the largest records."""
    return max(1024 * 1024, max_message_size * 2)


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Passes the coordinator's rebalance to the member: revoked first, then assigned.

    aiokafka awaits ``on_partitions_revoked`` before the member rejoins, which is what
    lets the member settle and commit what it holds before another member reads it.
    """

    def __init__(
        self,
        on_assigned: Callable[[set[TopicPartition]], None],
        on_revoked: Callable[[set[TopicPartition]], Awaitable[None]],
    ) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_assigned(assigned)
