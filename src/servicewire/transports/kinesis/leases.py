"""The lease and checkpoint table of a channel: who reads which shard for a group, and
how far each group got, in DynamoDB, the way the Kinesis Client Library keeps them.

One table per channel (:func:`~.naming.table_name`), keyed by ``group`` and ``item``:

* ``member#<id>``: a live member of the group; its ``beat`` rises every renewal.
* ``shard#<id>``: the group's lease on a shard: ``owner`` (``""`` once released),
  ``epoch`` (raised by every takeover), ``beat`` (raised by every write of the owner),
  ``checkpoint`` (the last sequence number the group settled; ``SHARD_END`` once a
  closed shard is done) and ``attempts`` (deliveries so far of the records after the
  checkpoint that were nacked, so a poison record's count survives a restart).

No wall clock is compared across machines: a member takes over a lease (or counts a
member dead) only once it has seen the same ``(epoch, beat)`` for ``lease_time`` on its
own monotonic clock, and takes it with a write conditional on exactly that pair, so two
members cannot both win. Every write of an owner is conditional on its ``owner`` and
``epoch`` (fencing): a member that lost its lease cannot move the checkpoint::

    table = LeaseTable(client, "sw-orders-1a2b3c4d.leases")
    await table.ensure()
    state = await table.read("billing")                 # members and leases, consistent
    lease = await table.acquire("billing", "shardId-0", "m1", state.shards.get("shardId-0"))
    await table.write(lease, checkpoint="49590...", attempts={})   # raises LeaseLost
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from servicewire.errors import TransportError
from servicewire.transports.kinesis.client import error_code, is_condition_failed, is_missing

SHARD_END = "SHARD_END"
"""The checkpoint of a closed shard whose every record the group settled."""
_MEMBER = "member#"
_SHARD = "shard#"
_ACTIVE_WAIT = 120.0


class LeaseLost(TransportError):
    """Another member took the lease (or the group was deleted): stop reading the shard."""


@dataclass(frozen=True, slots=True)
class LeaseState:
    """A lease item as read."""

    shard: str
    owner: str
    epoch: int
    beat: int
    checkpoint: str | None
    attempts: dict[str, int]


@dataclass(slots=True)
class Lease:
    """A lease this member holds."""

    group: str
    shard: str
    owner: str
    epoch: int
    checkpoint: str | None
    attempts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupState:
    """Everything the table holds for a group: members' beats and shard leases."""

    members: dict[str, int]
    shards: dict[str, LeaseState]


def _lease_state(item: dict[str, Any]) -> LeaseState:
    attempts = {k: int(v["N"]) for k, v in item.get("attempts", {}).get("M", {}).items()}
    checkpoint = item.get("checkpoint", {}).get("S")
    return LeaseState(
        shard=item["item"]["S"][len(_SHARD) :],
        owner=item.get("owner", {}).get("S", ""),
        epoch=int(item.get("epoch", {}).get("N", "0")),
        beat=int(item.get("beat", {}).get("N", "0")),
        checkpoint=checkpoint or None,
        attempts=attempts,
    )


class LeaseTable:
    """The lease table of one channel, seen through one DynamoDB client."""

    def __init__(self, client: Any, name: str) -> None:
        self.client = client
        self.name = name

    async def ensure(self) -> None:
        """Create the table if it does not exist; return once it is active (a table
        still being deleted is created again once it is gone)."""
        async with asyncio.timeout(_ACTIVE_WAIT):
            while True:
                try:
                    await self.client.create_table(
                        TableName=self.name,
                        AttributeDefinitions=[
                            {"AttributeName": "group", "AttributeType": "S"},
                            {"AttributeName": "item", "AttributeType": "S"},
                        ],
                        KeySchema=[
                            {"AttributeName": "group", "KeyType": "HASH"},
                            {"AttributeName": "item", "KeyType": "RANGE"},
                        ],
                        BillingMode="PAY_PER_REQUEST",
                    )
                except Exception as exc:
                    if error_code(exc) != "ResourceInUseException":
                        raise
                while True:
                    try:
                        answer = await self.client.describe_table(TableName=self.name)
                    except Exception as exc:
                        if not is_missing(exc):
                            raise
                        break  # it was being deleted: create it again
                    if answer["Table"]["TableStatus"] == "ACTIVE":
                        return
                    await asyncio.sleep(0.5)

    async def drop(self) -> None:
        """Delete the table (every group's leases and checkpoints); missing is fine."""
        try:
            await self.client.delete_table(TableName=self.name)
        except Exception as exc:
            if not is_missing(exc):
                raise

    # Reading ----------------------------------------------------------------------------

    async def _items(self, group: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start: dict[str, Any] | None = None
        for _ in range(10_000):
            request: dict[str, Any] = {
                "TableName": self.name,
                "KeyConditionExpression": "#g = :g",
                "ExpressionAttributeNames": {"#g": "group"},
                "ExpressionAttributeValues": {":g": {"S": group}},
                "ConsistentRead": True,
            }
            if start is not None:
                request["ExclusiveStartKey"] = start
            answer = await self.client.query(**request)
            items.extend(answer.get("Items", []))
            start = answer.get("LastEvaluatedKey")
            if start is None:
                break
        return items

    async def read(self, group: str) -> GroupState:
        """The group's members and leases, as stored now (strongly consistent)."""
        members: dict[str, int] = {}
        shards: dict[str, LeaseState] = {}
        for item in await self._items(group):
            name = item["item"]["S"]
            if name.startswith(_MEMBER):
                members[name[len(_MEMBER) :]] = int(item.get("beat", {}).get("N", "0"))
            elif name.startswith(_SHARD):
                state = _lease_state(item)
                shards[state.shard] = state
        return GroupState(members, shards)

    # Members ----------------------------------------------------------------------------

    async def beat(self, group: str, member: str) -> None:
        """Say ``member`` of ``group`` is alive (its beat rises)."""
        await self.client.update_item(
            TableName=self.name,
            Key={"group": {"S": group}, "item": {"S": _MEMBER + member}},
            UpdateExpression="ADD beat :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        )

    async def leave(self, group: str, member: str) -> None:
        """``member`` left ``group``: the others rebalance at once."""
        await self.client.delete_item(
            TableName=self.name, Key={"group": {"S": group}, "item": {"S": _MEMBER + member}}
        )

    # Leases -----------------------------------------------------------------------------

    async def forget(self, group: str, shard: str) -> None:
        """Delete the lease of a finished shard Kinesis no longer lists (trimmed after
        retention): its children no longer wait for it. Only while it is finished."""
        try:
            await self.client.delete_item(
                TableName=self.name,
                Key={"group": {"S": group}, "item": {"S": _SHARD + shard}},
                ConditionExpression="checkpoint = :end",
                ExpressionAttributeValues={":end": {"S": SHARD_END}},
            )
        except Exception as exc:
            if not is_condition_failed(exc):
                raise

    async def acquire(
        self, group: str, shard: str, owner: str, seen: LeaseState | None
    ) -> Lease | None:
        """Take the lease on ``shard`` if it is still as ``seen`` (``None``: no item yet);
        the caller decided it is free, released or silent. ``None`` if another won."""
        key = {"group": {"S": group}, "item": {"S": _SHARD + shard}}
        values: dict[str, Any] = {":me": {"S": owner}}
        if seen is None:
            condition = "attribute_not_exists(#i)"
            epoch = 1
        else:
            condition = "epoch = :e AND beat = :b"
            values[":e"] = {"N": str(seen.epoch)}
            values[":b"] = {"N": str(seen.beat)}
            epoch = seen.epoch + 1
        values[":ne"] = {"N": str(epoch)}
        values[":zero"] = {"N": "0"}
        try:
            answer = await self.client.update_item(
                TableName=self.name,
                Key=key,
                UpdateExpression="SET #o = :me, epoch = :ne, beat = :zero",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#o": "owner", "#i": "item"}
                if seen is None
                else {"#o": "owner"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_condition_failed(exc):
                return None
            raise
        state = _lease_state(answer["Attributes"])
        return Lease(group, shard, owner, epoch, state.checkpoint, dict(state.attempts))

    async def write(self, lease: Lease, *, release: bool = False) -> None:
        """Renew ``lease`` with its checkpoint and attempts (and give it up if
        ``release``); raises :class:`LeaseLost` when it is no longer this member's."""
        names = {"#o": "owner"}
        values: dict[str, Any] = {
            ":me": {"S": lease.owner},
            ":e": {"N": str(lease.epoch)},
            ":one": {"N": "1"},
            ":a": {"M": {k: {"N": str(v)} for k, v in lease.attempts.items()}},
        }
        sets = ["attempts = :a"]
        if lease.checkpoint is not None:
            sets.append("checkpoint = :c")
            values[":c"] = {"S": lease.checkpoint}
        if release:
            sets.append("#o = :none")
            values[":none"] = {"S": ""}
        try:
            await self.client.update_item(
                TableName=self.name,
                Key={"group": {"S": lease.group}, "item": {"S": _SHARD + lease.shard}},
                UpdateExpression=f"SET {', '.join(sets)} ADD beat :one",
                ConditionExpression="#o = :me AND epoch = :e",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if is_condition_failed(exc) or is_missing(exc):
                raise LeaseLost(
                    f"kinesis: lease of {lease.group!r} on {lease.shard} was taken over"
                ) from None
            raise

    # Cleanup ----------------------------------------------------------------------------

    async def delete_group(self, group: str) -> None:
        """Delete every item of ``group`` (members, leases, checkpoints)."""
        try:
            items = await self._items(group)
        except Exception as exc:
            if is_missing(exc):
                return
            raise
        for start in range(0, len(items), 25):
            chunk = items[start : start + 25]
            requests = [
                {"DeleteRequest": {"Key": {"group": i["group"], "item": i["item"]}}} for i in chunk
            ]
            pending: dict[str, Any] = {self.name: requests}
            for _ in range(20):
                answer = await self.client.batch_write_item(RequestItems=pending)
                pending = answer.get("UnprocessedItems") or {}
                if not pending:
                    break
                await asyncio.sleep(0.1)
