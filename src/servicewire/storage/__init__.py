"""Storage: database engines for every supported URL, and the tables Servicewire owns.

    from servicewire.storage import create_engine, all_tables_metadata

    engine = create_engine("postgresql://127.0.0.1/orders")   # asyncpg, TLS options, ...

:mod:`~.database` (URLs to async engines, redaction; SQLite on aiosqlite), :mod:`~.schema`
(the metadata the outbox, inbox, relay and journal tables share), :mod:`~.dynamodb`
(``dynamodb://`` URLs, aiobotocore clients and the DynamoDB outbox tables).
"""

from servicewire.storage.database import (
    DatabaseError,
    async_url,
    create_engine,
    dialect_of,
    display_url,
    is_sqlite_memory,
    plain_url,
    sync_url,
)
from servicewire.storage.dynamodb import DynamoConfig
from servicewire.storage.schema import all_tables_metadata, metadata

__all__ = [
    "DatabaseError",
    "DynamoConfig",
    "all_tables_metadata",
    "async_url",
    "create_engine",
    "dialect_of",
    "display_url",
    "is_sqlite_memory",
    "metadata",
    "plain_url",
    "sync_url",
]
