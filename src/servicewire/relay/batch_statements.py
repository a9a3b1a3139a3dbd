"""The statements a polling relay's batch sends, built once per relay.

A batch on PostgreSQL or MariaDB locks its shard rows, claims the oldest outbox rows of
those shards, and after publishing deletes (or marks) them and adds to the shards'
progress counters. Building those statements anew for every batch cost more CPU than
running them (SQLAlchemy constructs the statement, then derives its cache key, before
it even finds the compiled form): built once, a statement object keeps its cache key and
its compiled SQL, and only the bound values change.

On PostgreSQL the batch is also fewer round trips: the idle-session timeout is set by
the lock query itself, lists travel as one array parameter (``= ANY(:ids)``, so the SQL
text never changes with the list's length), and the delete and the progress update are
one statement (a data-modifying CTE)::

    statements = BatchStatements("postgresql", shards=16, cleanup="delete", batch_size=500)
    shards = (await conn.execute(statements.lock(8, 0), statements.lock_values(5.0))).scalars()
    result = await conn.execute(*statements.claim(list(shards), lock=True))
    ...                                               # publish the rows
    for stmt, values in statements.settle(published_rows, now=time.time()):
        await conn.execute(stmt, values)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Double,
    Executable,
    Integer,
    any_,
    bindparam,
    case,
    delete,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from servicewire.outbox.tables import outbox, relay_shard
from servicewire.relay.ownership import OWNER_KEY
from servicewire.relay.rows import OutboxRow

PG_IDLE_TIMEOUT = "idle_in_transaction_session_timeout"

LEASE_SHARD = -1
"""The ``servicewire_relay_shard`` row that is the SQLite lease."""

Statement = tuple[Executable, dict[str, Any]]


class BatchStatements:
    """Prebuilt claim / lock / settle statements for one relay's dialect and settings."""

    def __init__(self, dialect: str, *, shards: int, cleanup: str, batch_size: int) -> None:
        self.dialect = dialect
        self.shards = shards
        self.cleanup = cleanup
        self._postgres = dialect == "postgresql"
        self._locks: dict[tuple[int, int], Executable] = {}
        claim = select(outbox).order_by(outbox.c.id).limit(batch_size)
        if cleanup == "mark":
            claim = claim.where(outbox.c.published_at.is_(None))
        # Only PostgreSQL and MariaDB lock rows (SQLite has one leaseholder); MariaDB's
        # claim is a plain snapshot read (see PollingRelay._locked_batch for why).
        self._claim_all = claim
        self._claim_all_locked = claim.with_for_update(skip_locked=True)
        # Writers may use a different shard count; every row folds onto ours.
        folded = outbox.c.shard % self.shards
        if self._postgres:
            some = claim.where(folded == any_(bindparam("shards", type_=ARRAY(Integer()))))
        else:
            some = claim.where(folded.in_(bindparam("shards", expanding=True)))
        self._claim_some = some
        self._claim_some_locked = some.with_for_update(skip_locked=True)
        self._finish = self._build_finish()
        self._settle_pg = self._build_settle_pg() if self._postgres else None
        self._record_lease = (
            update(relay_shard)
            .where(relay_shard.c.relay == OWNER_KEY, relay_shard.c.shard == LEASE_SHARD)
            .values(
                last_published_at=bindparam("now", type_=Double()),
                published=relay_shard.c.published + bindparam("count", type_=BigInteger()),
            )
        )
        self.renew_lease = (
            update(relay_shard)
            .where(
                relay_shard.c.relay == OWNER_KEY,
                relay_shard.c.shard == LEASE_SHARD,
                relay_shard.c.owner == bindparam("token"),
            )
            .values(expires_at=bindparam("expires", type_=Double()))
        )
        """SQLite: extend the lease while it carries ``token`` (``token``, ``expires``)."""

    # Lock --------------------------------------------------------------------------------

    def lock(self, limit: int, first: int = 0) -> Executable:
        """Up to ``limit`` free shard rows, locked (``FOR UPDATE SKIP LOCKED``), taken in
        shard order from ``first`` on (wrapping), so that batch loops asking for shard
        ranges of their own take disjoint ones when the shards are free.

        PostgreSQL: the same query sets the batch's ``idle_in_transaction_session_timeout``
        (``set_config(..., true)`` is SET LOCAL): a condition that is always true, so the
        timeout is in place before this relay can hold a lock, with no extra round trip.
        """
        stmt = self._locks.get((limit, first))
        if stmt is None:
            conditions = [
                relay_shard.c.relay == OWNER_KEY,
                relay_shard.c.shard >= 0,
                relay_shard.c.shard < self.shards,
            ]
            if self._postgres:
                config = func.set_config(bindparam("name"), bindparam("value"), true())
                conditions.append(config.is_not(None))
            stmt = (
                select(relay_shard.c.shard)
                .where(*conditions)
                .order_by((relay_shard.c.shard + (self.shards - first)) % self.shards)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            self._locks[(limit, first)] = stmt
        return stmt

    def lock_values(self, lease_ttl: float) -> dict[str, Any]:
        """The lock query's parameters (PostgreSQL: the idle timeout, in milliseconds)."""
        if not self._postgres:
            return {}
        return {"name": PG_IDLE_TIMEOUT, "value": str(max(1, round(lease_ttl * 1000)))}

    # Claim -------------------------------------------------------------------------------

    def claim(self, shards: Sequence[int], *, lock: bool) -> Statement:
        """The oldest unpublished rows of ``shards`` (every shard: no shard filter)."""
        if len(shards) >= self.shards:
            return (self._claim_all_locked if lock else self._claim_all), {}
        return (self._claim_some_locked if lock else self._claim_some), {"shards": list(shards)}

    # Settle ------------------------------------------------------------------------------

    def settle(self, published: Sequence[OutboxRow], now: float) -> list[Statement]:
        """What a batch sends for its published rows: finish them (delete or mark), and
        add to each shard's progress counter (PostgreSQL: both in one statement)."""
        if not published:
            return []
        ids = [row.id for row in published]
        if self._settle_pg is not None:
            return [(self._settle_pg, {"ids": ids, "now": now})]
        finish_values = {"ids": ids, "now": now} if self.cleanup == "mark" else {"ids": ids}
        if self.dialect == "sqlite":  # one counter, the lease row's: a statement built once
            counted = {"now": now, "count": len(published)}
            return [(self._finish, finish_values), (self._record_lease, counted)]
        per_shard: dict[int, int] = {}
        for row in published:
            key = row.shard % self.shards
            per_shard[key] = per_shard.get(key, 0) + 1
        # The CASE changes with the batch's shards: built per batch (MariaDB).
        record = (
            update(relay_shard)
            .where(relay_shard.c.relay == OWNER_KEY, relay_shard.c.shard.in_(list(per_shard)))
            .values(
                last_published_at=now,
                published=relay_shard.c.published
                + case(per_shard, value=relay_shard.c.shard, else_=0),
            )
        )
        return [(self._finish, finish_values), (record, {})]

    def _ids(self) -> Any:
        if self._postgres:
            return outbox.c.id == any_(bindparam("ids", type_=ARRAY(BigInteger())))
        return outbox.c.id.in_(bindparam("ids", expanding=True))

    def _build_finish(self) -> Executable:
        if self.cleanup == "mark":
            return (
                update(outbox)
                .where(self._ids())
                .values(published_at=bindparam("now", type_=Double()))
            )
        return delete(outbox).where(self._ids())

    def _build_settle_pg(self) -> Executable:
        """One statement: finish the rows and add each shard's count from what it finished.

        ``WITH done AS (DELETE ... RETURNING shard) UPDATE relay_shard ... FROM (counts)``
        """
        finish = self._build_finish()
        done = finish.returning(outbox.c.shard).cte("done")  # type: ignore[attr-defined]
        slot = (done.c.shard % self.shards).label("slot")
        counts = select(slot, func.count().label("n")).group_by(slot).subquery("counts")
        return (
            update(relay_shard)
            .where(relay_shard.c.relay == OWNER_KEY, relay_shard.c.shard == counts.c.slot)
            .values(
                published=relay_shard.c.published + counts.c.n,
                last_published_at=bindparam("now", type_=Double()),
            )
            .add_cte(done)
        )
