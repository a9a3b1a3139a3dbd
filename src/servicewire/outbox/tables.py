"""The outbox tables, defined once with SQLAlchemy Core for PostgreSQL, MariaDB and SQLite.

They live on :data:`servicewire.storage.schema.metadata`, so ``servicewire db init URL`` (or an
Alembic migration generated against that metadata) creates them with the inbox::

    from servicewire.outbox.tables import outbox
    async with engine.begin() as conn:
        await conn.run_sync(outbox.create, checkfirst=True)

=================================  ==========================================================
table                              what a row is
=================================  ==========================================================
``servicewire_outbox``             a message written in a business transaction, not yet
                                   published (or published and marked, in ``mark`` cleanup)
``servicewire_outbox_dead``        a row a relay could not publish (bad destination, corrupt
                                   headers), moved aside with the reason
``servicewire_relay_shard``        one row per (outbox, shard): the lock a batch holds
                                   (PostgreSQL, MariaDB) or the lease (SQLite), and progress
``servicewire_relay_checkpoint``   a log-tailing relay's confirmed position and progress
=================================  ==========================================================

Times are Unix seconds as doubles: the same arithmetic on every database, with
microseconds, and no time-zone conversions between drivers.
"""

from __future__ import annotations

from sqlalchemy import (
    DDL,
    BigInteger,
    Column,
    Double,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.dialects import mysql

from servicewire.storage.schema import metadata

OUTBOX_TABLE = "servicewire_outbox"
NOTIFY_CHANNEL = "servicewire_outbox"
"""PostgreSQL NOTIFY channel a statement trigger signals after outbox inserts."""

# SQLite only auto-increments an INTEGER PRIMARY KEY; everywhere else a 64-bit id.
_Id = BigInteger().with_variant(Integer(), "sqlite")
# A plain BLOB is 64 KiB on MariaDB; messages may be up to the transport limit (1 MiB+).
_Payload = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
_Text = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

outbox = Table(
    OUTBOX_TABLE,
    metadata,
    # The ordering column: relays publish a shard's rows in id order. Ids are assigned
    # at insert, not commit, so relays never use it as a cursor (see relay.polling).
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False),
    Column("destination", String(200), nullable=False),
    Column("headers", _Text, nullable=False),  # JSON object of string -> string
    Column("payload", _Payload, nullable=False),
    Column("partition_key", String(200), nullable=True),
    Column("shard", SmallInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    # NULL until published; set (instead of deleting) by relays with cleanup="mark".
    Column("published_at", Double, nullable=True),
)

outbox_dead = Table(
    "servicewire_outbox_dead",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=False),  # the outbox row's id
    Column("message_id", String(64), nullable=False),
    Column("destination", String(200), nullable=False),
    Column("headers", _Text, nullable=False),
    Column("payload", _Payload, nullable=False),
    Column("partition_key", String(200), nullable=True),
    Column("shard", SmallInteger, nullable=False),
    Column("created_at", Double, nullable=False),
    Column("reason", _Text, nullable=False),
    Column("relay", String(200), nullable=False),
    Column("moved_at", Double, nullable=False),
)

relay_shard = Table(
    "servicewire_relay_shard",
    metadata,
    Column("relay", String(200), primary_key=True),
    Column("shard", Integer, primary_key=True, autoincrement=False),
    Column("owner", String(200), nullable=True),
    Column("expires_at", Double, nullable=True),
    Column("last_published_at", Double, nullable=True),
    Column("published", BigInteger, nullable=False, default=0),
)

relay_checkpoint = Table(
    "servicewire_relay_checkpoint",
    metadata,
    Column("relay", String(200), primary_key=True),
    Column("position", String(200), nullable=True),
    Column("last_published_at", Double, nullable=True),
    Column("published", BigInteger, nullable=False, default=0),
    Column("updated_at", Double, nullable=False),
)

# PostgreSQL: one NOTIFY per inserting statement (delivered at commit), so a polling
# relay that LISTENs wakes up at once instead of waiting for its next poll.
NOTIFY_FUNCTION = DDL(  # type: ignore[no-untyped-call]
    f"""
CREATE OR REPLACE FUNCTION servicewire_outbox_notify() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    RETURN NULL;
END;
$$ LANGUAGE plpgsql
"""
)
NOTIFY_TRIGGER = DDL(  # type: ignore[no-untyped-call]
    f"""
CREATE TRIGGER servicewire_outbox_notify AFTER INSERT ON {OUTBOX_TABLE}
FOR EACH STATEMENT EXECUTE FUNCTION servicewire_outbox_notify()
"""
)
event.listen(outbox, "after_create", NOTIFY_FUNCTION.execute_if(dialect="postgresql"))
event.listen(outbox, "after_create", NOTIFY_TRIGGER.execute_if(dialect="postgresql"))

ALL_TABLES = (outbox, outbox_dead, relay_shard, relay_checkpoint)
