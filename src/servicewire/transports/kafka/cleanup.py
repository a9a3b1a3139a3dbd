"""Deleting what the Kafka transport declared: topics, and the consumer groups on them.

A channel is a topic (and ``<channel>.dlq`` another); a group is the Kafka consumer
group ``<topic>.<group>`` holding its committed offsets::

    await delete_topics(admin, ["orders", "orders.dlq"])
    await delete_consumer_group(admin, "orders.billing")

Both are idempotent: a topic or group that does not exist is not an error.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DeleteGroupsRequest

from servicewire.errors import TransportError

_UNKNOWN_TOPIC = 3  # UNKNOWN_TOPIC_OR_PARTITION
_GROUP_NOT_FOUND = 69  # GROUP_ID_NOT_FOUND


async def delete_topics(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> None:
    """Delete ``topics`` with their records."""
    try:
        response = await admin.delete_topics(list(topics))
    except KafkaError as exc:
        raise TransportError(f"kafka: cannot delete topics {list(topics)}: {exc!r}") from None
    for name, code, *_ in response.topic_error_codes:
        if code not in (0, _UNKNOWN_TOPIC):
            raise TransportError(f"kafka: cannot delete topic {name!r}: error {code}")


async def delete_consumer_group(admin: AIOKafkaAdminClient, group_id: str) -> None:
    """Delete the consumer group ``group_id`` and its committed offsets.

    The group must have no live member (close the subscriptions first). aiokafka's admin
    client has no call for this, so the DeleteGroups request goes to the group's
    coordinator directly.
    """
    try:
        coordinator = await admin.find_coordinator(group_id)
        response = await admin._send_request(DeleteGroupsRequest([group_id]), coordinator)
    except KafkaError as exc:
        raise TransportError(f"kafka: cannot delete group {group_id!r}: {exc!r}") from None
    for name, code in response.results:
        if code not in (0, _GROUP_NOT_FOUND):
            raise TransportError(f"kafka: cannot delete group {name!r}: error {code}")
