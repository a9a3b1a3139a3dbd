"""What a relay owns: the outbox table of its database, whatever the relay is named.

Several relays may serve one database (one embedded in a service, one started with
``servicewire relay --name ...``). Ownership is keyed by the outbox, never by the relay
name, so they compete for one lease, one slot, one lock and one set of shard rows, and
only one of them publishes a given key at a time. The name is a label for logs::

    relay_shard.c.relay == OWNER_KEY          # shard and lease rows, checkpoints
    binlog_lock_name("orders")                # "servicewire:orders"
    wal_slot_name("orders")                   # "servicewire_orders"
"""

from __future__ import annotations

from servicewire.outbox.tables import OUTBOX_TABLE
from servicewire.relay.replication_slot import slot_name_for

OWNER_KEY = OUTBOX_TABLE
"""The ``relay`` column of the shard/lease rows and checkpoints every relay shares."""


def binlog_lock_name(database: str | None) -> str:
    """The ``GET_LOCK`` name of a database's binlog relay (MariaDB caps names at 64)."""
    return f"servicewire:{database or ''}"[:64]


def wal_slot_name(database: str | None) -> str:
    """The replication slot (and publication) of a database's outbox."""
    return slot_name_for(database or "outbox")
