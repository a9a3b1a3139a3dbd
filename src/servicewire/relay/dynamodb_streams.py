"""DynamoDB Streams tailing: publish the outbox items of a DynamoDB table from its stream.

Handlers write outbox items in their own ``TransactWriteItems``
(:mod:`servicewire.outbox.dynamodb`); the table's stream carries one record per item
write, in order per item. The relay::

    relay = DynamoDbStreamsRelay("dynamodb://127.0.0.1:8000?region=us-east-1", transport)
    await relay.start()          # or: servicewire relay --mode dynamodb-streams --db dynamodb://...

* holds the outbox's lease (:mod:`~servicewire.relay.dynamodb_lease`): one owner per
  table, whatever the relays are named; standbys take over after ``lease_ttl`` of silence;
* lists the stream's shards (``DescribeStream``, paged) every ``shard_refresh_interval``
  and tails every shard whose parent is finished (or gone from the stream), so after a
  reshard a key's records in the parent go out before those in its child;
* per shard: ``GetShardIterator`` ``AFTER_SEQUENCE_NUMBER`` its checkpoint
  (``TRIM_HORIZON`` without one), then ``GetRecords`` in a loop, idling with bounded
  backoff (``poll_interval`` doubling up to ``max_poll_interval``) on empty pages;
* publishes each page's messages in per-key order (``publish_rows``: waves), checking
  before every wave that its lease is fresh, and **only then checkpoints** the page's
  last sequence number: a conditional ``TransactWriteItems`` that renews the lease only
  for this owner and epoch. A crash between the two publishes the page again (at least
  once, in key order); a former owner cannot checkpoint after a takeover;
* a closed shard (no ``NextShardIterator``) is checkpointed as finished, which releases
  its children;
* records that are not Servicewire outbox items (another writer's item, corrupt headers,
  a destination no transport accepts, a message too large) are dead-lettered into the
  relay table (``pk = "dead#..."``, with the reason) and logged; ``REMOVE`` records
  (TTL expiry, deletes) are skipped. Neither wedges the shard.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Mapping, Sequence
from typing import Any

from servicewire.outbox.dynamodb import FORMAT, KEY_PREFIX
from servicewire.relay.base import Relay
from servicewire.relay.dynamodb_lease import StreamLease
from servicewire.relay.fencing import OwnershipLostError, Tenure
from servicewire.relay.rows import OutboxRow, publish_rows
from servicewire.storage.dynamodb import (
    TTL_ATTRIBUTE,
    DynamoConfig,
    DynamoConfigError,
    check_stream,
    error_code,
    missing_dynamo_tables,
)
from servicewire.timeouts import within
from servicewire.transports.base import Transport

log = logging.getLogger("servicewire.relay")

SHARD_PREFIX = "shard#"
DEAD_PREFIX = "dead#"
DEAD_TTL = 14 * 24 * 3600
"""Seconds a dead letter stays in the relay table (DynamoDB's TTL removes it)."""

MAX_PAGES = 1000
"""Bound on ``DescribeStream`` pages (100 shards each)."""


def ready_shards(shards: Sequence[Mapping[str, Any]], finished: set[str]) -> list[str]:
    """Shards to tail now, oldest first: not finished, and the parent finished or gone.

    A parent missing from the listing was trimmed (older than the stream's 24 hours),
    so nothing of it is left to wait for::

        >>> ready_shards([{"ShardId": "a"}, {"ShardId": "b", "ParentShardId": "a"}], set())
        ['a']
    """
    listed = {s["ShardId"] for s in shards}
    ready = []
    for shard in shards:
        shard_id = shard["ShardId"]
        parent = shard.get("ParentShardId")
        if shard_id in finished:
            continue
        if parent and parent in listed and parent not in finished:
            continue
        ready.append(shard_id)
    return ready


def _dead(
    reason: str, record: Mapping[str, Any], message: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {"reason": reason, "record": record, "message": message}


def decode_record(
    record: Mapping[str, Any], first_id: int
) -> tuple[list[OutboxRow], list[dict[str, Any]]]:
    """The outbox rows a stream record carries, and what cannot be read (with reasons).

    ``first_id`` numbers the rows (``publish_rows`` keeps per-key order by it).
    """
    if record.get("eventName") == "REMOVE":
        return [], []  # TTL expiry or a delete: nothing to publish
    image = (record.get("dynamodb") or {}).get("NewImage")
    if not isinstance(image, dict):
        return [], [_dead("the record has no NewImage (stream view type?)", record, None)]
    pk = image.get("pk", {}).get("S", "")
    if image.get("format", {}).get("S") != FORMAT or "L" not in image.get("messages", {}):
        return [], [_dead(f"not a Servicewire outbox item (pk {pk[:100]!r})", record, None)]
    partition_key = pk[len(KEY_PREFIX) :] if pk.startswith(KEY_PREFIX) else None
    written_at = float(image.get("written_at", {}).get("N", "0") or 0)
    rows: list[OutboxRow] = []
    bad: list[dict[str, Any]] = []
    for n, value in enumerate(image["messages"]["L"]):
        fields = value.get("M") if isinstance(value, dict) else None
        try:
            assert isinstance(fields, dict)
            rows.append(
                OutboxRow(
                    id=first_id + n,
                    message_id=str(fields["id"]["S"]),
                    destination=str(fields["destination"]["S"]),
                    headers=str(fields["headers"]["S"]),
                    payload=bytes(fields["payload"]["B"]),
                    partition_key=partition_key,
                    shard=0,
                    created_at=written_at,
                )
            )
        except (AssertionError, KeyError, TypeError):
            bad.append(_dead(f"message {n} of item {pk[:100]!r} lacks a field", record, None))
    return rows, bad


class DynamoDbStreamsRelay(Relay):
    """Publishes outbox items streamed from a DynamoDB table's stream."""

    mode = "dynamodb-streams"

    def __init__(
        self,
        url: str | DynamoConfig,
        transport: Transport,
        *,
        name: str = "relay",
        batch_size: int = 500,
        poll_interval: float = 0.05,
        max_poll_interval: float = 1.0,
        lease_ttl: float = 5.0,
        takeover_interval: float = 1.0,
        shard_refresh_interval: float = 10.0,
        progress_interval: float = 5.0,
    ) -> None:
        self._setup(
            transport, name=name, batch_size=batch_size, progress_interval=progress_interval
        )
        self.config = url if isinstance(url, DynamoConfig) else DynamoConfig.from_url(url)
        # GetRecords returns at most 1,000 records.
        self.batch_size = max(1, min(batch_size, 1000))
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.lease_ttl = lease_ttl
        self.takeover_interval = takeover_interval
        self.shard_refresh_interval = shard_refresh_interval
        self.owner = f"{name}@{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self.positions: dict[str, str] = {}
        """Checkpointed sequence number per shard (as far as this relay knows)."""
        self._tenure = Tenure(lease_ttl)
        self._lease: StreamLease | None = None
        """The lease while this relay holds it."""
        self._watcher: StreamLease | None = None
        self._streams: Any = None
        self._stream_arn = ""
        self._finished: set[str] = set()
        self._next_row = 0

    # Setup -------------------------------------------------------------------------------

    async def check_tables(self) -> None:
        missing = await missing_dynamo_tables(self.config)
        if missing:
            raise DynamoConfigError(
                f"{self.config.display()} lacks table(s) {', '.join(missing)}: "
                "run `servicewire db init dynamodb://...` first"
            )

    async def backlog(self) -> int:
        """Unknown without reading the stream: 0 (progress reports show what went out)."""
        return 0

    # The loop ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        async with self.config.client() as db, self.config.client("dynamodbstreams") as streams:
            self._streams = streams
            self._stream_arn = await check_stream(db, self.config.table)
            # One lease object for the relay's life: a standby's observation of the
            # holder (what it saw, since when) must outlive each attempt.
            lease = self._watcher = self._watcher or StreamLease(
                db, self.config.relay_table, owner=self.owner, ttl=self.lease_ttl
            )
            lease.client = db
            # A standby keeps its clients while it waits (a new pair costs ~60-150 ms CPU).
            while True:
                if self._stopping.is_set():
                    return
                asked_at = time.monotonic()
                if await lease.try_acquire():
                    break
                await self._idle(self.takeover_interval)
            self._lease = lease
            self._tenure = Tenure(self.lease_ttl, f"relay {self.name}: {self.config.relay_table}")
            self._tenure.proven(asked_at)
            self._activate(f"holds the lease of {self.config.table} (epoch {lease.epoch})")
            try:
                await self._tail(lease)
            finally:
                self.active = False
                self._lease = None
                self._tenure.lose("released")
                if self._stopping.is_set():
                    with contextlib.suppress(Exception):
                        await lease.release()

    async def _tail(self, lease: StreamLease) -> None:
        running: dict[str, asyncio.Task[None]] = {}
        refresh_at = 0.0
        try:
            while not self._stopping.is_set():
                for shard_id, task in list(running.items()):
                    if task.done():
                        del running[shard_id]
                        task.result()  # a shard's failure ends this tenure (run() retries)
                        refresh_at = 0.0  # a finished shard may release its children
                if time.monotonic() >= refresh_at:
                    shards = await self._shards(self._streams)
                    await self._load_checkpoints([s["ShardId"] for s in shards])
                    for shard_id in ready_shards(shards, self._finished):
                        if shard_id not in running:
                            running[shard_id] = asyncio.create_task(self._tail_shard(shard_id))
                    refresh_at = time.monotonic() + self.shard_refresh_interval
                if self._tenure.due():
                    await self._prove(lease)  # also what keeps standbys waiting
                with contextlib.suppress(TimeoutError):
                    await within(self._stopping.wait(), min(0.2, self.lease_ttl / 8))
        finally:
            # Stopping: each shard task finishes the page in flight (published and
            # checkpointed) and returns; a failure cancels the rest.
            tasks = list(running.values())
            if tasks and self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await within(asyncio.gather(*tasks, return_exceptions=True), 30)
            for task in tasks:
                task.cancel()
            # return_exceptions: the shards' own errors stay here; a cancellation of
            # this task still propagates.
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _prove(self, lease: StreamLease) -> None:
        asked_at = time.monotonic()
        try:
            await lease.renew()
        except OwnershipLostError as exc:
            self._tenure.lose(str(exc))
            raise
        self._tenure.proven(asked_at)

    async def _shards(self, streams: Any) -> list[dict[str, Any]]:
        shards: list[dict[str, Any]] = []
        start: str | None = None
        for _ in range(MAX_PAGES):
            options = {"ExclusiveStartShardId": start} if start else {}
            described = (await streams.describe_stream(StreamArn=self._stream_arn, **options))[
                "StreamDescription"
            ]
            shards += described.get("Shards", [])
            start = described.get("LastEvaluatedShardId")
            if not start:
                break
        return shards

    async def _load_checkpoints(self, shard_ids: Sequence[str]) -> None:
        assert self._lease is not None
        client, table = self._lease.client, self.config.relay_table
        wanted = [i for i in shard_ids if i not in self._finished]
        for i in range(0, len(wanted), 100):
            keys = [{"pk": {"S": SHARD_PREFIX + s}} for s in wanted[i : i + 100]]
            request: dict[str, Any] = {table: {"Keys": keys, "ConsistentRead": True}}
            for _ in range(20):  # unprocessed keys come back under throttling
                got = await client.batch_get_item(RequestItems=request)
                for item in got.get("Responses", {}).get(table, []):
                    shard_id = item["pk"]["S"][len(SHARD_PREFIX) :]
                    if item.get("finished", {}).get("BOOL"):
                        self._finished.add(shard_id)
                    if "seq" in item:
                        self.positions[shard_id] = item["seq"]["S"]
                request = got.get("UnprocessedKeys") or {}
                if not request:
                    break
                await asyncio.sleep(0.1)

    async def _iterator(self, streams: Any, shard_id: str) -> str:
        position = self.positions.get(shard_id)
        options: dict[str, Any] = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": position}
            if position
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        try:
            got = await streams.get_shard_iterator(
                StreamArn=self._stream_arn, ShardId=shard_id, **options
            )
        except Exception as exc:
            if error_code(exc) != "TrimmedDataAccessException":
                raise
            # The checkpoint is older than the stream keeps (24 h): those records are gone.
            log.error(
                "relay %s: shard %s was trimmed past its checkpoint %s: records the stream "
                "no longer holds were never published; resuming at the oldest record",
                self.name,
                shard_id,
                position,
            )
            got = await streams.get_shard_iterator(
                StreamArn=self._stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )
        return str(got["ShardIterator"])

    async def _tail_shard(self, shard_id: str) -> None:
        event = asyncio.Event()
        self._worker_wakeups.append(event)
        try:
            iterator: str | None = await self._iterator(self._streams, shard_id)
            delay = self.poll_interval
            while iterator is not None and not self._stopping.is_set():
                try:
                    page = await self._streams.get_records(
                        ShardIterator=iterator, Limit=self.batch_size
                    )
                except Exception as exc:
                    if error_code(exc) != "ExpiredIteratorException":
                        raise
                    iterator = await self._iterator(self._streams, shard_id)  # they live 15 min
                    continue
                records = page.get("Records", [])
                iterator = page.get("NextShardIterator")
                if records:
                    await self._publish(shard_id, records, finished=iterator is None)
                    delay = self.poll_interval
                elif iterator is None:
                    await self._checkpoint(shard_id, self.positions.get(shard_id), 0, [], True)
                else:
                    await self._idle(delay, event)
                    delay = min(delay * 2, self.max_poll_interval)
            if iterator is None:
                log.info("relay %s: shard %s finished", self.name, shard_id)
        finally:
            self._worker_wakeups.remove(event)

    async def _publish(self, shard_id: str, records: list[dict[str, Any]], finished: bool) -> None:
        lease = self._lease
        if lease is None:
            raise OwnershipLostError(f"relay {self.name} does not hold the lease")
        rows: list[OutboxRow] = []
        dead: list[dict[str, Any]] = []
        for record in records:
            got, bad = decode_record(record, self._next_row)
            self._next_row += len(got) + 1
            rows += got
            dead += bad
        renew = lambda: self._prove(lease)  # noqa: E731
        async with self._tenure.kept(renew):
            outcome = await publish_rows(
                self.transport, rows, guard=lambda: self._tenure.ensure(renew)
            )
        if isinstance(outcome.failure, OwnershipLostError):
            raise outcome.failure
        if self._tenure.lost:
            raise OwnershipLostError(f"relay {self.name}: {self._tenure.lost}")
        # The checkpoint moves only past a fully published page: after a failure the
        # page comes again (what went out, twice; in key order).
        outcome.raise_failure()
        for row, reason in outcome.bad:
            dead.append(_dead(reason, _record_of(records, row), _row_value(row)))
        last = records[-1]["dynamodb"]["SequenceNumber"]
        await self._checkpoint(shard_id, str(last), len(outcome.published), dead, finished)

    async def _checkpoint(
        self,
        shard_id: str,
        sequence: str | None,
        published: int,
        dead: list[dict[str, Any]],
        finished: bool,
    ) -> None:
        lease = self._lease
        if lease is None:
            raise OwnershipLostError(f"relay {self.name} does not hold the lease")
        now = time.time()
        dead_items = [self._dead_item(shard_id, n, entry, now) for n, entry in enumerate(dead)]
        # Dead letters first (idempotent keys: a replayed page rewrites the same ones),
        # at most 25 per request; then the fenced checkpoint.
        for i in range(0, len(dead_items), 25):
            chunk = [{"PutRequest": {"Item": item}} for item in dead_items[i : i + 25]]
            request: dict[str, Any] = {self.config.relay_table: chunk}
            for _ in range(20):
                got = await lease.client.batch_write_item(RequestItems=request)
                request = got.get("UnprocessedItems") or {}
                if not request:
                    break
                await asyncio.sleep(0.1)
        for entry in dead:
            log.warning(
                "relay %s: shard %s: dead-lettered a record: %s",
                self.name,
                shard_id,
                entry["reason"],
            )
        item: dict[str, Any] = {
            "pk": {"S": SHARD_PREFIX + shard_id},
            "finished": {"BOOL": finished},
            "owner": {"S": self.owner},
            "updated_at": {"N": repr(now)},
        }
        if sequence is not None:
            item["seq"] = {"S": sequence}
        asked_at = time.monotonic()
        try:
            await lease.checkpoint(item)
        except OwnershipLostError as exc:
            self._tenure.lose(str(exc))
            raise
        self._tenure.proven(asked_at)
        if sequence is not None:
            self.positions[shard_id] = sequence
        if finished:
            self._finished.add(shard_id)
        self._count(published, len(dead))

    def _dead_item(
        self, shard_id: str, n: int, entry: dict[str, Any], now: float
    ) -> dict[str, Any]:
        record = entry["record"]
        sequence = str((record.get("dynamodb") or {}).get("SequenceNumber", "?"))
        item: dict[str, Any] = {
            "pk": {"S": f"{DEAD_PREFIX}{shard_id}#{sequence}#{n}"},
            "reason": {"S": entry["reason"][:2000]},
            "relay": {"S": self.name},
            "moved_at": {"N": repr(now)},
            TTL_ATTRIBUTE: {"N": str(int(now + DEAD_TTL))},
            # The record as received (binary values as text), for a person to look at.
            "record": {"S": json.dumps(record, default=repr)[:300_000]},
        }
        message = entry["message"]
        if message is not None:
            item["message"] = {"M": message}
        return item

    # Draining ------------------------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        """Return once no shard has a record past its checkpoint (tests, shutdown).

        An open shard's ``GetRecords`` may return empty pages before later records, so
        each shard is read up to 5 pages ahead before it counts as caught up.
        """

        async def caught_up() -> bool:
            async with self.config.client("dynamodbstreams") as streams:
                if not self._stream_arn:
                    async with self.config.client() as db:
                        self._stream_arn = await check_stream(db, self.config.table)
                for shard in await self._shards(streams):
                    shard_id = shard["ShardId"]
                    if shard_id in self._finished:
                        continue
                    iterator: str | None = await self._iterator(streams, shard_id)
                    for _ in range(5):
                        if iterator is None:
                            break
                        page = await streams.get_records(ShardIterator=iterator, Limit=1)
                        if page.get("Records"):
                            return False
                        iterator = page.get("NextShardIterator")
                    if iterator is None:
                        return False  # closed but not checkpointed as finished yet
                return True

        await self._wait_for(caught_up, timeout, "drain")


def _row_value(row: OutboxRow) -> dict[str, Any]:
    return {
        "id": {"S": row.message_id},
        "destination": {"S": row.destination[:1000]},
        "headers": {"S": row.headers[:100_000]},
        "payload": {"B": row.payload[:100_000]},
    }


def _record_of(records: Sequence[Mapping[str, Any]], row: OutboxRow) -> Mapping[str, Any]:
    """The stream record a row came from (its message id is in the record's image)."""
    for record in records:
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        for value in image.get("messages", {}).get("L", []):
            if value.get("M", {}).get("id", {}).get("S") == row.message_id:
                return {
                    "eventID": record.get("eventID"),
                    "dynamodb": {"SequenceNumber": record["dynamodb"].get("SequenceNumber")},
                }
    return {}


async def dynamodb_status(config: DynamoConfig) -> dict[str, Any]:
    """What ``servicewire relay status --db dynamodb://...`` shows: the lease holder, each
    shard's checkpoint and the dead letters (from the relay table; bounded scan)::

        {"lease": {"owner": "relay@host:12:ab", "epoch": 2, "beat": 17},
         "shards": {"shardId-...": {"seq": "1100...", "finished": False, "age": 0.4}},
         "dead": 1}
    """
    status: dict[str, Any] = {"table": config.table, "lease": None, "shards": {}, "dead": 0}
    now = time.time()
    async with config.client() as client:
        request: dict[str, Any] = {"TableName": config.relay_table, "ConsistentRead": True}
        for _ in range(MAX_PAGES):
            page = await client.scan(**request)
            for item in page.get("Items", []):
                pk = item["pk"]["S"]
                if pk == "lease":
                    status["lease"] = {
                        "owner": item["owner"]["S"] or None,
                        "epoch": int(item["epoch"]["N"]),
                        "beat": int(item["beat"]["N"]),
                    }
                elif pk.startswith(SHARD_PREFIX):
                    status["shards"][pk[len(SHARD_PREFIX) :]] = {
                        "seq": item.get("seq", {}).get("S"),
                        "finished": bool(item.get("finished", {}).get("BOOL")),
                        "age": round(now - float(item["updated_at"]["N"]), 1),
                    }
                elif pk.startswith(DEAD_PREFIX):
                    status["dead"] += 1
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return status
