"""What ``servicewire relay status`` reports: backlog, ages, progress and log lag.

    status = await relay_status(engine)
    print(format_status(status))

Works for every relay mode; slot lag (PostgreSQL) and binlog lag (MariaDB) are shown
where the database has them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from servicewire.outbox.tables import ALL_TABLES, outbox, outbox_dead, relay_checkpoint, relay_shard
from servicewire.relay.mysql_binlog import parse_position
from servicewire.storage.database import DatabaseError, dialect_of, display_url, missing_tables


@dataclass
class RelayStatus:
    database: str
    backlog: int
    oldest_unpublished_age: float | None
    last_published_at: float | None
    moved_aside: int
    relays: list[dict[str, Any]] = field(default_factory=list)
    slots: list[dict[str, Any]] = field(default_factory=list)
    binlog: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


async def relay_status(engine: AsyncEngine) -> RelayStatus:
    dialect = dialect_of(engine)
    missing = await missing_tables(engine, [t.name for t in ALL_TABLES])
    if missing:
        raise DatabaseError(
            f"{display_url(engine)} lacks {', '.join(missing)}: run `servicewire db init URL`"
        )
    now = time.time()
    async with engine.connect() as conn:
        unpublished = outbox.c.published_at.is_(None)
        backlog, oldest = (
            await conn.execute(
                select(func.count(), func.min(outbox.c.created_at)).where(unpublished)
            )
        ).one()
        dead = (await conn.execute(select(func.count()).select_from(outbox_dead))).scalar_one()
        relays: list[dict[str, Any]] = []
        for row in await conn.execute(
            select(
                relay_shard.c.relay,
                func.sum(relay_shard.c.published),
                func.max(relay_shard.c.last_published_at),
                func.max(relay_shard.c.owner),
            ).group_by(relay_shard.c.relay)
        ):
            relays.append(
                {
                    "name": row[0],
                    "mode": "polling",
                    "published": int(row[1] or 0),
                    "last_published_at": row[2],
                    "leaseholder": row[3],
                }
            )
        for row in await conn.execute(select(relay_checkpoint)):
            relays.append(
                {
                    "name": row.relay,
                    "mode": "postgres-wal" if dialect == "postgresql" else "mysql-binlog",
                    "published": int(row.published or 0),
                    "last_published_at": row.last_published_at,
                    "position": row.position,
                }
            )
        slots: list[dict[str, Any]] = []
        binlog: dict[str, Any] | None = None
        if dialect == "postgresql":
            for row in await conn.execute(
                text(
                    "SELECT slot_name, active, "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn) AS lag, "
                    "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS retained "
                    "FROM pg_replication_slots WHERE database = current_database() "
                    "AND plugin = 'pgoutput' AND slot_name LIKE 'servicewire%'"
                )
            ):
                slots.append(
                    {
                        "slot": row.slot_name,
                        "active": bool(row.active),
                        "lag_bytes": int(row.lag or 0),
                        "retained_wal_bytes": int(row.retained or 0),
                    }
                )
        elif dialect == "mysql":
            master = (await conn.execute(text("SHOW MASTER STATUS"))).first()
            if master is not None:
                binlog = {"file": master[0], "position": int(master[1]), "lag_bytes": {}}
                for relay in relays:
                    if relay.get("position"):
                        file, pos = parse_position(relay["position"])
                        same = file == master[0]
                        binlog["lag_bytes"][relay["name"]] = int(master[1]) - pos if same else None
    last = max((r["last_published_at"] or 0 for r in relays), default=0) or None
    return RelayStatus(
        database=dialect,
        backlog=int(backlog),
        oldest_unpublished_age=(now - float(oldest)) if oldest is not None else None,
        last_published_at=last,
        moved_aside=int(dead),
        relays=relays,
        slots=slots,
        binlog=binlog,
    )


def _ago(ts: float | None) -> str:
    if not ts:
        return "never"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ts))} ({time.time() - ts:.1f}s ago)"


def format_status(status: RelayStatus) -> str:
    age = status.oldest_unpublished_age
    lines = [
        f"database:                {status.database}",
        f"backlog:                 {status.backlog} unpublished",
        f"oldest unpublished age:  {'-' if age is None else f'{age:.1f}s'}",
        f"last published:          {_ago(status.last_published_at)}",
        f"moved aside (dead rows): {status.moved_aside}",
    ]
    for relay in status.relays:
        extra = f" position {relay['position']}" if relay.get("position") else ""
        holder = f" lease {relay['leaseholder']}" if relay.get("leaseholder") else ""
        lines.append(
            f"relay {relay['name']} ({relay['mode']}): published {relay['published']}, "
            f"last {_ago(relay['last_published_at'])}{extra}{holder}"
        )
    for slot in status.slots:
        lines.append(
            f"slot {slot['slot']}: {'active' if slot['active'] else 'inactive'}, "
            f"lag {slot['lag_bytes']} bytes, retained WAL {slot['retained_wal_bytes']} bytes"
        )
    if status.binlog is not None:
        lines.append(f"binlog: {status.binlog['file']}:{status.binlog['position']}")
        for name, lag in status.binlog["lag_bytes"].items():
            lines.append(f"binlog lag {name}: {'other file' if lag is None else f'{lag} bytes'}")
    return "\n".join(lines)
