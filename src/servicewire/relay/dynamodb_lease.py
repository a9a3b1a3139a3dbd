"""One owner per DynamoDB outbox: a lease item with an epoch, and fenced checkpoints.

The lease is the item ``pk = "lease"`` of the relay table: ``owner``, ``epoch`` (raised
by every takeover) and ``beat`` (raised by every renewal). No wall clock is compared
across machines: a standby reads the item, and takes it over only once it has seen the
same ``(epoch, beat)`` for ``lease_ttl`` seconds of its own monotonic clock, with a
conditional write on exactly that ``(epoch, beat)``, so two standbys cannot both win::

    lease = StreamLease(client, "servicewire_outbox_relay", owner="relay@host:1234:ab12", ttl=5)
    while not await lease.try_acquire():
        await asyncio.sleep(1)
    await lease.renew()                               # raises OwnershipLostError once taken
    await lease.checkpoint({"pk": {"S": "shard#..."}, ...})   # fenced: same epoch or nothing

A checkpoint is one ``TransactWriteItems``: renew the lease *if* it still carries this
owner and epoch, and write the checkpoint item. A former owner (paused past its lease,
partitioned) cannot move a checkpoint after a takeover: its transaction is cancelled.
The owner trusts a renewal for ``ttl / 2`` from the moment it was sent
(:class:`~servicewire.relay.fencing.Tenure`); the standby waits a full ``ttl`` after
its first read, which came after that renewal landed.
"""

from __future__ import annotations

import time
from typing import Any

from servicewire.relay.fencing import OwnershipLostError
from servicewire.storage.dynamodb import error_code

LEASE_KEY = "lease"
RELEASED = ""
"""``owner`` of a lease given up by a graceful stop: a standby takes it at once."""


class StreamLease:
    """The relay table's lease item, seen from one relay."""

    def __init__(self, client: Any, table: str, *, owner: str, ttl: float) -> None:
        self.client = client
        self.table = table
        self.owner = owner
        self.ttl = ttl
        self.epoch: int | None = None
        """The epoch this relay holds (None while it stands by)."""
        self._seen: tuple[str, int, int] | None = None
        self._seen_since = 0.0

    @property
    def key(self) -> dict[str, Any]:
        return {"pk": {"S": LEASE_KEY}}

    async def holder(self) -> tuple[str, int, int] | None:
        """``(owner, epoch, beat)`` as stored now (a strongly consistent read)."""
        got = await self.client.get_item(TableName=self.table, Key=self.key, ConsistentRead=True)
        item = got.get("Item")
        if not item:
            return None
        return item["owner"]["S"], int(item["epoch"]["N"]), int(item["beat"]["N"])

    async def try_acquire(self) -> bool:
        """Take the lease if it is free, released, ours, or silent for ``ttl``; True if held."""
        state = await self.holder()
        now = time.monotonic()
        if state is None:
            return await self._write(1, "attribute_not_exists(pk)", {})
        owner, epoch, beat = state
        if owner == self.owner:
            self.epoch = epoch  # ours still (e.g. after a failed renewal): carry on
            return True
        if owner != RELEASED:
            if state != self._seen:
                self._seen, self._seen_since = state, now
                return False
            if now - self._seen_since < self.ttl:
                return False
        return await self._write(
            epoch + 1,
            "epoch = :e AND beat = :b",
            {":e": {"N": str(epoch)}, ":b": {"N": str(beat)}},
        )

    async def _write(self, epoch: int, condition: str, values: dict[str, Any]) -> bool:
        try:
            await self.client.put_item(
                TableName=self.table,
                Item={
                    **self.key,
                    "owner": {"S": self.owner},
                    "epoch": {"N": str(epoch)},
                    "beat": {"N": "0"},
                    "taken_at": {"N": repr(time.time())},
                },
                ConditionExpression=condition,
                **({"ExpressionAttributeValues": values} if values else {}),
            )
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                self._seen = None  # someone else moved first: watch the new holder
                return False
            raise
        self.epoch = epoch
        self._seen = None
        return True

    def _held_epoch(self) -> int:
        if self.epoch is None:
            raise OwnershipLostError(f"{self.table}: the lease is not held by {self.owner}")
        return self.epoch

    def renewal(self) -> dict[str, Any]:
        """The ``Update`` that renews the lease only while this relay holds this epoch."""
        return {
            "TableName": self.table,
            "Key": self.key,
            "UpdateExpression": "SET beat = beat + :one",
            "ConditionExpression": "#o = :me AND epoch = :e",
            "ExpressionAttributeNames": {"#o": "owner"},
            "ExpressionAttributeValues": {
                ":one": {"N": "1"},
                ":me": {"S": self.owner},
                ":e": {"N": str(self._held_epoch())},
            },
        }

    async def renew(self) -> None:
        """Prove ownership (and keep standbys waiting); raises :class:`OwnershipLostError`."""
        try:
            await self.client.update_item(**self.renewal())
        except Exception as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                self.epoch = None
                raise OwnershipLostError(
                    f"{self.table}: the lease was taken over (epoch moved on)"
                ) from None
            raise

    async def checkpoint(self, *puts: dict[str, Any]) -> None:
        """Write ``puts`` (items of the relay table) only while this relay holds the lease."""
        entries: list[dict[str, Any]] = [{"Update": self.renewal()}]
        entries += [{"Put": {"TableName": self.table, "Item": item}} for item in puts]
        try:
            await self.client.transact_write_items(TransactItems=entries)
        except Exception as exc:
            if error_code(exc) == "TransactionCanceledException" and _lease_check_failed(exc):
                self.epoch = None
                raise OwnershipLostError(
                    f"{self.table}: checkpoint refused, the lease was taken over"
                ) from None
            raise

    async def release(self) -> None:
        """Give the lease up (graceful stop): a standby takes it without waiting."""
        if self.epoch is None:
            return
        try:
            await self.client.update_item(
                TableName=self.table,
                Key=self.key,
                UpdateExpression="SET #o = :free",
                ConditionExpression="#o = :me AND epoch = :e",
                ExpressionAttributeNames={"#o": "owner"},
                ExpressionAttributeValues={
                    ":free": {"S": RELEASED},
                    ":me": {"S": self.owner},
                    ":e": {"N": str(self.epoch)},
                },
            )
        except Exception as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
        finally:
            self.epoch = None


def _lease_check_failed(exc: BaseException) -> bool:
    """True when a cancelled transaction failed on the lease's condition (its first entry).

    ``CancellationReasons`` lists one reason per entry; a server that omits them is
    taken at its word that some condition failed, and only the lease has one.
    """
    response = getattr(exc, "response", {}) or {}
    reasons = response.get("CancellationReasons")
    if not reasons:
        return "ConditionalCheckFailed" in str(exc)
    return bool(reasons[0].get("Code") == "ConditionalCheckFailed")
