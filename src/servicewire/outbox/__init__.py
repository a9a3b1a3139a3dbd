"""The transactional outbox: tables and the writer (relays live in :mod:`servicewire.relay`).

from servicewire.outbox import write_messages
async with session.begin():
    session.add(order)
    await write_messages(session, [message])     # commits with the order, or not at all

On DynamoDB the messages are items in the caller's ``TransactWriteItems``::

    await write_messages_dynamodb(client, [message], items=[{"Put": order_put}])
"""

from servicewire.outbox.dynamodb import outbox_items, write_messages_dynamodb
from servicewire.outbox.tables import outbox, outbox_dead, relay_checkpoint, relay_shard
from servicewire.outbox.writer import write_messages, write_messages_sync

__all__ = [
    "outbox",
    "outbox_dead",
    "outbox_items",
    "relay_checkpoint",
    "relay_shard",
    "write_messages",
    "write_messages_dynamodb",
    "write_messages_sync",
]
