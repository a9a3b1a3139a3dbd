"""Message relays: move committed outbox rows to a transport (one module per relay).

====================  ===========================================  ==========================
mode                  how it finds committed rows                  databases
====================  ===========================================  ==========================
``polling``           claims rows ``FOR UPDATE SKIP LOCKED``       PostgreSQL, MariaDB, SQLite
``postgres-wal``      logical replication, ``pgoutput``            PostgreSQL
``mysql-binlog``      the ROW binlog, ``mysql-replication``        MariaDB, MySQL
``dynamodb-streams``  the table's DynamoDB stream, per shard       DynamoDB (``dynamodb://``)
====================  ===========================================  ==========================

    relay = create_relay("postgres-wal", "postgresql://postgres@127.0.0.1/orders", transport)
    await relay.start()           # or: await relay.run() in the foreground
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.relay.base import Relay
from servicewire.storage.database import create_engine
from servicewire.transports.base import Transport

MODES = ("polling", "postgres-wal", "mysql-binlog", "dynamodb-streams")

__all__ = ["MODES", "Relay", "create_relay"]


def create_relay(
    mode: str, engine_or_url: AsyncEngine | str | URL, transport: Transport, **options: Any
) -> Relay:
    """A relay of ``mode`` for the database; ``options`` go to the relay's constructor.

    ``dynamodb-streams`` takes a ``dynamodb://`` URL (no engine: DynamoDB is not SQL).
    """
    if mode == "dynamodb-streams":
        from servicewire.relay.dynamodb_streams import DynamoDbStreamsRelay

        if not isinstance(engine_or_url, str):
            raise ValueError("the dynamodb-streams relay takes a dynamodb:// URL, not an engine")
        return DynamoDbStreamsRelay(engine_or_url, transport, **options)
    engine = (
        engine_or_url if isinstance(engine_or_url, AsyncEngine) else create_engine(engine_or_url)
    )
    if mode == "polling":
        from servicewire.relay.polling import PollingRelay

        return PollingRelay(engine, transport, **options)
    if mode == "postgres-wal":
        from servicewire.relay.postgres_wal import PostgresWalRelay

        return PostgresWalRelay(engine, transport, **options)
    if mode == "mysql-binlog":
        from servicewire.relay.mysql_binlog import MysqlBinlogRelay

        return MysqlBinlogRelay(engine, transport, **options)
    raise ValueError(f"unknown relay mode {mode!r}: use one of {', '.join(MODES)}")
