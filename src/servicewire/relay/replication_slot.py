"""A logical replication slot and its publication: create, check, measure and drop them.

The postgres-wal relay streams the outbox's inserts from a ``pgoutput`` slot; this is
the slot's management, done over ordinary SQL connections::

    slot = ReplicationSlot(engine, slot_name_for("orders"))   # servicewire_orders
    created = await slot.ensure(owner="orders")  # CREATE PUBLICATION ... and slot, if missing
    print(await slot.retained_wal())         # bytes of WAL the server keeps for it
    await slot.drop()                        # a slot nobody reads retains WAL forever

Slot and publication names are checked against ``[a-z0-9_]{1,63}`` here, because the
publication name is interpolated into DDL (PostgreSQL takes no parameters there).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.outbox.tables import OUTBOX_TABLE
from servicewire.storage.database import DatabaseError

# The postgres-wal relay's logger, as before this code moved here.
log = logging.getLogger("servicewire.relay")

_IDENT = re.compile(r"[^a-z0-9_]")


def slot_name_for(name: str) -> str:
    """The slot (and publication) name of relay ``name``: ``servicewire_<name>``, sanitised."""
    return ("servicewire_" + _IDENT.sub("_", name.lower()))[:63]


class ReplicationSlot:
    """One ``pgoutput`` replication slot and the publication it streams (same name by default)."""

    def __init__(self, engine: AsyncEngine, slot: str, publication: str | None = None) -> None:
        self.engine = engine
        self.slot = slot
        self.publication = publication or slot
        for what, value in (("slot", self.slot), ("publication", self.publication)):
            if not re.fullmatch(r"[a-z0-9_]{1,63}", value):
                raise ValueError(f"invalid {what} name {value!r}: use 1-63 of a-z 0-9 _")

    async def ensure(self, owner: str) -> bool:
        """Create the publication and the slot if missing; check them if present.

        Returns True when this call created the slot (it was missing, or lost its WAL):
        the new slot starts at the server's current position, so rows committed before
        it are in no slot and only a sweep of the table finds them. ``owner`` names the
        relay in the log lines.
        """
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            level = (await conn.execute(text("SHOW wal_level"))).scalar_one()
            if level != "logical":
                raise DatabaseError(
                    f"wal_level is {level!r}; the postgres-wal relay needs wal_level=logical"
                )
            tables = (
                (
                    await conn.execute(
                        text("SELECT tablename FROM pg_publication_tables WHERE pubname = :p"),
                        {"p": self.publication},
                    )
                )
                .scalars()
                .all()
            )
            exists = (
                await conn.execute(
                    text("SELECT count(*) FROM pg_publication WHERE pubname = :p"),
                    {"p": self.publication},
                )
            ).scalar_one()
            if not exists:
                with contextlib.suppress(Exception):  # another relay may race us to it
                    await conn.execute(
                        text(
                            f"CREATE PUBLICATION {self.publication} FOR TABLE {OUTBOX_TABLE} "
                            "WITH (publish = 'insert')"
                        )
                    )
            elif OUTBOX_TABLE not in tables:
                raise DatabaseError(
                    f"publication {self.publication} exists but does not include {OUTBOX_TABLE}"
                )
            slot = (
                await conn.execute(
                    text(
                        "SELECT plugin, database, wal_status FROM pg_replication_slots"
                        " WHERE slot_name = :s"
                    ),
                    {"s": self.slot},
                )
            ).first()
            database = (await conn.execute(text("SELECT current_database()"))).scalar_one()
            if slot is not None and slot.wal_status == "lost":
                # Invalidated (max_slot_wal_keep_size): it can never stream again. A new
                # slot starts at the current position; the caller sweeps the gap.
                log.warning(
                    "relay %s: replication slot %s lost its WAL; recreating it", owner, self.slot
                )
                await conn.execute(text("SELECT pg_drop_replication_slot(:s)"), {"s": self.slot})
                slot = None
            if slot is None:
                try:
                    await conn.execute(
                        text("SELECT pg_create_logical_replication_slot(:s, 'pgoutput')"),
                        {"s": self.slot},
                    )
                    log.info("relay %s: created replication slot %s", owner, self.slot)
                    return True
                except Exception as exc:
                    if "already exists" not in str(exc):
                        raise
            elif slot.plugin != "pgoutput" or slot.database != database:
                raise DatabaseError(
                    f"replication slot {self.slot} belongs to plugin {slot.plugin!r} on "
                    f"database {slot.database!r}; expected pgoutput on {database!r}"
                )
        return False

    async def drop(self) -> None:
        """Drop the slot and publication (a slot nobody reads retains WAL forever)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            for _ in range(50):  # the walsender may take a moment to let go
                try:
                    await conn.execute(
                        text(
                            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                            " WHERE slot_name = :s"
                        ),
                        {"s": self.slot},
                    )
                    break
                except Exception as exc:
                    if "is active" not in str(exc):
                        raise
                    await asyncio.sleep(0.1)
            await conn.execute(text(f"DROP PUBLICATION IF EXISTS {self.publication}"))

    async def retained_wal(self) -> int | None:
        """Bytes of WAL the slot keeps on the server (``None`` if the slot is missing)."""
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    text(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)"
                        " FROM pg_replication_slots WHERE slot_name = :s"
                    ),
                    {"s": self.slot},
                )
            ).scalar()
        return None if value is None else int(value)

    async def backlog(self) -> int:
        """Bytes of WAL between the server's position and the slot's confirmed position."""
        async with self.engine.connect() as conn:
            value = (
                await conn.execute(
                    text(
                        "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)"
                        " FROM pg_replication_slots WHERE slot_name = :s"
                    ),
                    {"s": self.slot},
                )
            ).scalar()
        return 0 if value is None else max(0, int(value))

    async def confirmed_flush_lsn(self) -> str | None:
        """The position the slot's reader has confirmed (``None`` if the slot is missing)."""
        async with self.engine.connect() as conn:
            confirmed: str | None = (
                await conn.execute(
                    text(
                        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots"
                        " WHERE slot_name = :s"
                    ),
                    {"s": self.slot},
                )
            ).scalar()
        return confirmed
