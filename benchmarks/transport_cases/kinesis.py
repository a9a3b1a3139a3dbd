"""Amazon Kinesis: Servicewire's ``kinesis://`` transport next to raw aiobotocore, on moto.

Both do the same work on the same server, a stream of ``SHARDS`` shards: ``n``
messages of ``size`` bytes published with ``PutRecords`` (500 a request, each request
confirmed), every message with its own partition key; then consumed by one reader of
every shard that handles each record and checkpoints in DynamoDB (raw: the usual
GetRecords loop per shard, one ``UpdateItem`` checkpoint per batch, as a minimal KCL-
style consumer does). Ours also carries the envelope's headers inside the record, takes
its shards' leases, hands records out one key at a time with an ack each, and moves
its checkpoints every ``checkpoint_interval``.

moto is an in-memory emulator (its GetRecords walks the shard from its start, so reads
slow down with depth): the figures are moto's, not AWS's, and ``n`` is capped at
``MAX_N``. With no ``SERVICEWIRE_BENCH_KINESIS`` URL in the environment, importing this
module starts a private ``moto_server`` that stops at exit::

    .venv/bin/python benchmarks/transports.py --only kinesis --n 2000
"""

from __future__ import annotations

import asyncio
import atexit
import os
import time
import uuid

from servicewire.messaging.message import Message
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.kinesis.client import Clients
from servicewire.transports.kinesis.options import parse_kinesis_url
from servicewire.transports.kinesis.transport import KinesisTransport
from transport_cases._timing import Clock

SHARDS = 4
BATCH = 500
PREFETCH = 500
MAX_N = 5000
POLL = 0.05
OPTIONS = {
    "shards": str(SHARDS),
    "poll_interval": str(POLL),
    "lease_time": "3",
    "checkpoint_interval": "0.5",
}


def _own_server() -> str:
    from servicewire.testing.moto_server import PrivateMoto

    server = PrivateMoto()
    atexit.register(server.close)  # registered first: a failed start cleans up too
    server.start()
    return server.kinesis_url(**OPTIONS)


URL = os.environ.get("SERVICEWIRE_BENCH_KINESIS") or _own_server()


def _name(what: str) -> str:
    return f"bench.{what}.{uuid.uuid4().hex[:8]}"


def _capped(n: int) -> int:
    if n > MAX_N:
        print(f"    (kinesis: {n:,} capped at {MAX_N:,}: moto's reads walk the shard)")
    return min(n, MAX_N)


async def ours(url: str, n: int, size: int) -> tuple[float, float]:
    n = _capped(n)
    transport = await connect_transport(url)
    assert isinstance(transport, KinesisTransport)
    channel, group = _name("ours"), "g"
    payload = b"x" * size
    messages = [
        Message.create(
            payload, destination=channel, kind="event", type="bench.Event", partition_key=str(i)
        )
        for i in range(n)
    ]
    try:
        await transport.declare(channel, group)
        start = time.perf_counter()
        for base in range(0, n, BATCH):
            await transport.publish_batch(messages[base : base + BATCH])
        publish_rate = n / (time.perf_counter() - start)
        clock = Clock(n)
        sub = await transport.subscribe(channel, group, prefetch=PREFETCH)

        async def consume() -> None:
            async for delivery in sub:
                await delivery.ack()
                if clock.tick():
                    return

        await within(consume(), 600)
        await sub.close()
        return publish_rate, clock.rate()
    finally:
        await transport.tear_down(channel, [group])
        await transport.close()


async def raw(url: str, n: int, size: int) -> tuple[float, float]:
    n = _capped(n)
    clients = await Clients.open(parse_kinesis_url(url))
    kinesis, dynamodb = clients.kinesis, clients.dynamodb
    stream, table = _name("raw"), _name("raw-leases")
    data = b"x" * size
    try:
        await kinesis.create_stream(StreamName=stream, ShardCount=SHARDS)
        await dynamodb.create_table(
            TableName=table,
            AttributeDefinitions=[{"AttributeName": "shard", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "shard", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        start = time.perf_counter()
        for base in range(0, n, BATCH):
            records = [
                {"Data": data, "PartitionKey": str(i)} for i in range(base, min(n, base + BATCH))
            ]
            answer = await kinesis.put_records(StreamName=stream, Records=records)
            assert not answer.get("FailedRecordCount"), "moto refused records"
        publish_rate = n / (time.perf_counter() - start)
        clock = Clock(n)
        done = asyncio.Event()
        shards = (await kinesis.list_shards(StreamName=stream))["Shards"]

        async def read(shard: str) -> None:
            iterator = (
                await kinesis.get_shard_iterator(
                    StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
                )
            )["ShardIterator"]
            while not done.is_set():
                answer = await kinesis.get_records(ShardIterator=iterator, Limit=PREFETCH)
                iterator = answer["NextShardIterator"]
                got = answer["Records"]
                for record in got:
                    record["PartitionKey"]  # read it, as a handler would
                    if clock.tick():
                        done.set()
                if got:
                    await dynamodb.update_item(
                        TableName=table,
                        Key={"shard": {"S": shard}},
                        UpdateExpression="SET checkpoint = :c",
                        ExpressionAttributeValues={":c": {"S": got[-1]["SequenceNumber"]}},
                    )
                else:
                    await asyncio.sleep(POLL)

        async with asyncio.timeout(600):
            await asyncio.gather(*(read(s["ShardId"]) for s in shards))
        return publish_rate, clock.rate()
    finally:
        try:
            await kinesis.delete_stream(StreamName=stream, EnforceConsumerDeletion=True)
            await dynamodb.delete_table(TableName=table)
        finally:
            await clients.close()
