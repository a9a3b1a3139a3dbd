"""The DynamoDB outbox: messages as items written in the caller's ``TransactWriteItems``.

A handler that keeps its state in DynamoDB adds outbox items to the transaction that
writes its own items; the ``dynamodb-streams`` relay publishes them from the table's
stream. The messages commit exactly when the handler's items commit::

    async with DynamoConfig.from_url(url).client() as client:
        await client.transact_write_items(TransactItems=[
            {"Put": {"TableName": "orders", "Item": order_item}},
            *outbox_items([order_created, validate_consumer]),
        ])
        # or, the same thing:
        await write_messages_dynamodb(client, [order_created], items=[order_put])

**Item layout, and why per-key order holds.** AWS documents one ordering guarantee for
DynamoDB Streams: the records of *one item* appear in the order of that item's
modifications, in one shard at a time (a split shard's children come after it). Items
that merely share a partition key are usually in one shard, but an item collection can
be split across partitions, so their records could land in sibling shards read in
parallel. So every partition key has **one item** (``pk = "key#" + partition key``),
and each write replaces it with the messages of that transaction (a list, in call
order): the stream records of that item, one per write, carry every message of the key
in commit order. A message without a partition key gets an item of its own
(``pk = "id#" + message id``). Each item carries ``expires_at`` (epoch seconds,
``ttl`` from now, 7 days by default) for DynamoDB's time to live: the relay reads the
stream, never the table, so the table holds only the last messages of each key and
forgets keys gone quiet; TTL deletions appear in the stream as ``REMOVE`` records,
which the relay skips.

Consequences: one transaction writes all of a key's messages in one item (at most
400 KB), and two concurrent transactions writing the same key conflict (DynamoDB
cancels one with ``TransactionConflict``; retry it), which serialises each key's
messages in commit order. A transaction holds at most 100 actions in all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from servicewire.messaging.message import Message
from servicewire.storage.dynamodb import DEFAULT_TABLE, TTL_ATTRIBUTE

KEY_PREFIX = "key#"
ID_PREFIX = "id#"
FORMAT = "1"
"""The ``format`` attribute of Servicewire's outbox items (the relay dead-letters others)."""

DEFAULT_TTL = 7 * 24 * 3600.0
"""Seconds an outbox item lives (the stream keeps records 24 hours; the item is spare)."""


def item_key(message: Message) -> str:
    """The ``pk`` of ``message``'s outbox item: its partition key's, or its own."""
    key = message.partition_key
    return KEY_PREFIX + key if key is not None else ID_PREFIX + message.id


def outbox_items(
    messages: Sequence[Message],
    *,
    table: str = DEFAULT_TABLE,
    ttl: float = DEFAULT_TTL,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """``TransactWriteItems`` ``Put`` entries (low-level attribute values) for ``messages``.

    One entry per partition key (its messages in order), one per keyless message::

        >>> entries = outbox_items([m1, m2])          # m1, m2 with key "order-42"
        >>> entries[0]["Put"]["Item"]["pk"]
        {'S': 'key#order-42'}
    """
    now = time.time() if now is None else now
    grouped: dict[str, list[Message]] = {}
    for message in messages:
        grouped.setdefault(item_key(message), []).append(message)
    entries = []
    for pk, group in grouped.items():
        item = {
            "pk": {"S": pk},
            "format": {"S": FORMAT},
            "messages": {"L": [{"M": _message_value(m)} for m in group]},
            "written_at": {"N": repr(now)},
            TTL_ATTRIBUTE: {"N": str(int(now + ttl))},
        }
        entries.append({"Put": {"TableName": table, "Item": item}})
    return entries


def _message_value(message: Message) -> dict[str, Any]:
    headers = message.headers.to_dict()
    return {
        "id": {"S": message.id},
        "destination": {"S": message.destination},
        "headers": {"S": json.dumps(headers, separators=(",", ":"))},
        "payload": {"B": bytes(message.payload)},
    }


async def write_messages_dynamodb(
    client: Any,
    messages: Sequence[Message],
    *,
    items: Sequence[dict[str, Any]] = (),
    table: str = DEFAULT_TABLE,
    ttl: float = DEFAULT_TTL,
) -> None:
    """Run one ``TransactWriteItems``: the caller's ``items`` plus the outbox items.

    ``client`` is an aiobotocore DynamoDB client (see
    :meth:`servicewire.storage.dynamodb.DynamoConfig.client`). Raises the client's
    ``TransactionCanceledException`` when a condition of ``items`` fails: then neither
    the caller's items nor the messages were written.
    """
    entries = [*items, *outbox_items(messages, table=table, ttl=ttl)]
    if entries:
        await client.transact_write_items(TransactItems=entries)
