"""``python -m servicewire.testing.moto_serial -H 127.0.0.1 -p PORT``: moto's server with
its SQS (and Kinesis and DynamoDB) calls taken one at a time.

moto serves each request on a thread of its own, and its FIFO receive is not safe
between threads: it copies the set of busy message groups when a receive starts, so
two receives at once can hand out two consecutive messages of one group to two
members, which AWS never does (a group has at most one message in flight). The
contract suite's ten competing members hit that within seconds. Here every SQS backend
call that reads or changes messages holds one lock, and a long poll waits *outside*
it (polling again every 50 ms), so members still wait in parallel. Nothing else of
moto changes. The Kinesis and DynamoDB calls the ``kinesis://`` transport makes are
serialized the same way (see :func:`patch`), and its resharding is made to behave as
Kinesis' does (:func:`patch_kinesis`: records go to open shards only; a split or merged
parent keeps its records).
:class:`~servicewire.testing.moto_server.PrivateMoto` starts this.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend
from moto.kinesis.models import KinesisBackend, Stream
from moto.server import main
from moto.sqs.models import SQSBackend

_LOCK = threading.RLock()
_POLL = 0.05


def _serialized(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _LOCK:
            return call(*args, **kwargs)

    return locked


def _receive(call: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(call)
    def receive(
        self: SQSBackend,
        queue_name: str,
        count: int,
        wait_seconds_timeout: int,
        visibility_timeout: int,
        message_attribute_names: list[str] | None = None,
    ) -> Any:
        deadline = time.monotonic() + (wait_seconds_timeout or 0)
        while True:
            with _LOCK:
                found = call(
                    self, queue_name, count, 0, visibility_timeout, message_attribute_names
                )
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(_POLL)

    return receive


def patch() -> None:
    """Serialize the SQS backend's message calls (idempotent)."""
    if getattr(SQSBackend, "_servicewire_serial", False):
        return
    for name in (
        "send_message",
        "send_message_batch",
        "delete_message",
        "delete_message_batch",
        "change_message_visibility",
        "change_message_visibility_batch",
        "purge_queue",
        "delete_queue",
    ):
        setattr(SQSBackend, name, _serialized(getattr(SQSBackend, name)))
    SQSBackend.receive_message = _receive(SQSBackend.receive_message)  # type: ignore[method-assign]
    SQSBackend._servicewire_serial = True  # type: ignore[attr-defined]
    # Kinesis: a shard's put_record reads the last sequence number and adds one, which two
    # threads can do at once (moto says so: "not safe for concurrency"). DynamoDB: a
    # conditional write checks and writes in two steps, so two members could both win
    # one lease (DynamoDB itself never lets them).
    for name in (
        "create_stream",
        "delete_stream",
        "put_record",
        "put_records",
        "get_records",
        "get_shard_iterator",
        "list_shards",
        "split_shard",
        "merge_shards",
        "update_shard_count",
    ):
        setattr(KinesisBackend, name, _serialized(getattr(KinesisBackend, name)))
    for name in (
        "create_table",
        "delete_table",
        "put_item",
        "get_item",
        "query",
        "update_item",
        "delete_item",
        "transact_write_items",
        "batch_write_item",
    ):
        setattr(DynamoDBBackend, name, _serialized(getattr(DynamoDBBackend, name)))


def _open_shards_only(call: Callable[..., Any]) -> Callable[..., Any]:
    """moto routes a key to the first shard whose hash range holds it, closed or not, so
    after a split every record still lands in the closed parent. Kinesis writes only
    to open shards: look among those."""

    @functools.wraps(call)
    def route(self: Stream, partition_key: str, explicit_hash_key: str) -> Any:
        shards = self.shards
        self.shards = {k: v for k, v in shards.items() if v.is_open}
        try:
            return call(self, partition_key, explicit_hash_key)
        finally:
            self.shards = shards

    return route


def _parents_keep_their_records(call: Callable[..., Any]) -> Callable[..., Any]:
    """moto moves (split) or copies (merge) a parent's records into its children. On
    Kinesis the parent keeps them, closed, until they expire, and a consumer reads the
    parent to its end before the children: keep them where they are."""

    @functools.wraps(call)
    def reshard(self: Stream, *shard_ids: str) -> Any:
        parents = [self.shards[i] for i in shard_ids if i in self.shards]
        kept = [p.records for p in parents]
        for parent in parents:
            parent.records = type(parent.records)()
        try:
            return call(self, *shard_ids)
        finally:
            for parent, records in zip(parents, kept, strict=True):
                parent.records = records

    return reshard


def patch_kinesis() -> None:
    """Make moto's resharding behave as Kinesis does (idempotent)."""
    if getattr(Stream, "_servicewire_reshard", False):
        return
    Stream.get_shard_for_key = _open_shards_only(Stream.get_shard_for_key)  # type: ignore[method-assign]
    Stream.split_shard = _parents_keep_their_records(Stream.split_shard)  # type: ignore[method-assign]
    Stream.merge_shards = _parents_keep_their_records(Stream.merge_shards)  # type: ignore[method-assign]
    Stream._servicewire_reshard = True  # type: ignore[attr-defined]


if __name__ == "__main__":
    patch_kinesis()
    patch()
    main()
