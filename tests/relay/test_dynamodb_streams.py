"""The DynamoDB outbox and the dynamodb-streams relay, on a private moto server.

The relay guarantees that apply to a stream (issue 18): per-key order, a crash between
publish and checkpoint publishes again (nothing lost), takeover by a standby once the
owner stops renewing, a former owner fenced off its checkpoint, foreign and bad items
dead-lettered without wedging the shard; plus ``db init`` and the CLI relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from servicewire.cli.main import main
from servicewire.messaging.message import Message
from servicewire.outbox.dynamodb import outbox_items, write_messages_dynamodb
from servicewire.relay import create_relay
from servicewire.relay.dynamodb_lease import StreamLease
from servicewire.relay.dynamodb_streams import (
    DynamoDbStreamsRelay,
    dynamodb_status,
    ready_shards,
)
from servicewire.relay.fencing import OwnershipLostError
from servicewire.storage.dynamodb import DynamoConfig, DynamoConfigError, create_tables
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from tests.relay.flaky import FlakyTransport
from tests.relay.helpers import Collector, eventually, make_messages, unique
from tests.relay.moto_dynamodb import moto_dynamodb
from tests.relay.processes import RelayProcess
from tests.relay.scenarios import (
    broker_down_then_drains_in_key_order,
    partial_failure_keeps_key_order,
)
from tests.relay.sink import read_sink
from tests.relay.test_processes import expected_by_key, first_seen_by_key, sink

REGION = "us-east-1"


@pytest.fixture(scope="module")
def moto_base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_dynamodb(tmp_path_factory.mktemp("moto")) as base:
        yield base


def table_url(base: str) -> str:
    return f"{base}/{unique('outbox').replace('.', '_')}?region={REGION}"


@dataclass
class DynamoEnv:
    url: str
    config: DynamoConfig
    client: Any
    relays: list[DynamoDbStreamsRelay] = field(default_factory=list)

    def relay(self, transport: Transport, **options: Any) -> DynamoDbStreamsRelay:
        options.setdefault("name", "r")
        options.setdefault("poll_interval", 0.02)
        options.setdefault("max_poll_interval", 0.2)
        relay = create_relay("dynamodb-streams", self.url, transport, **options)
        assert isinstance(relay, DynamoDbStreamsRelay)
        self.relays.append(relay)
        return relay

    async def started(self, transport: Transport, **options: Any) -> DynamoDbStreamsRelay:
        relay = self.relay(transport, **options)
        await relay.start()
        await eventually(lambda: relay.active, 15, "the relay to hold the lease")
        return relay

    async def write(
        self, messages: list[Message], per_tx: int = 1, items: list[dict[str, Any]] | None = None
    ) -> None:
        for i in range(0, len(messages), per_tx):
            await write_messages_dynamodb(
                self.client, messages[i : i + per_tx], items=items or [], table=self.config.table
            )

    async def relay_items(self, prefix: str) -> list[dict[str, Any]]:
        got = await self.client.scan(
            TableName=self.config.relay_table,
            FilterExpression="begins_with(pk, :p)",
            ExpressionAttributeValues={":p": {"S": prefix}},
            ConsistentRead=True,
        )
        return list(got["Items"])


@contextlib.asynccontextmanager
async def dynamo_env(base: str) -> AsyncIterator[DynamoEnv]:
    url = table_url(base)
    config = DynamoConfig.from_url(url)
    await create_tables(config)
    async with config.client() as client:
        env = DynamoEnv(url, config, client)
        try:
            yield env
        finally:
            for relay in env.relays:
                await relay.stop()
            for table in (config.table, config.relay_table):
                await client.delete_table(TableName=table)


async def memory() -> Transport:
    return await connect_transport(f"memory://{unique('b')}")


# The pieces ------------------------------------------------------------------------------


def test_url_gives_endpoint_region_table_and_hides_the_secret() -> None:
    config = DynamoConfig.from_url(
        "dynamodb://AKID:s%2Fecret@127.0.0.1:8000/orders?region=eu-west-1"
    )
    assert config.endpoint_url == "http://127.0.0.1:8000"
    assert (config.region, config.table, config.relay_table) == (
        "eu-west-1",
        "orders",
        "orders_relay",
    )
    assert (config.access_key_id, config.secret_access_key) == ("AKID", "s/ecret")
    assert "ecret" not in config.display()
    remote = DynamoConfig.from_url("dynamodb://dynamo.internal:443?tls=true")
    assert remote.endpoint_url == "https://dynamo.internal:443"
    assert remote.table == "servicewire_outbox"
    aws = DynamoConfig.from_url("dynamodb://aws/orders?region=eu-west-1")
    assert aws.endpoint_url is None and aws.access_key_id is None
    with pytest.raises(DynamoConfigError, match="unknown option"):
        DynamoConfig.from_url("dynamodb://127.0.0.1:1?secret_key=oops")


def test_outbox_items_put_one_item_per_partition_key_in_order() -> None:
    a1, a2 = (Message.create(b"x", destination="c", partition_key="a") for _ in range(2))
    loose = Message.create(b"y", destination="c")
    entries = outbox_items([a1, loose, a2], table="t", now=1000.0, ttl=60)
    assert [e["Put"]["Item"]["pk"]["S"] for e in entries] == ["key#a", f"id#{loose.id}"]
    listed = entries[0]["Put"]["Item"]["messages"]["L"]
    assert [m["M"]["id"]["S"] for m in listed] == [a1.id, a2.id]
    assert entries[0]["Put"]["Item"]["expires_at"] == {"N": "1060"}
    assert all(e["Put"]["TableName"] == "t" for e in entries)


def test_ready_shards_puts_parents_before_children() -> None:
    # a split into b and c; b and c merged... (DynamoDB only splits: c's parent a, d's b)
    shards = [
        {"ShardId": "a"},
        {"ShardId": "b", "ParentShardId": "a"},
        {"ShardId": "c", "ParentShardId": "a"},
        {"ShardId": "d", "ParentShardId": "b"},
        {"ShardId": "e", "ParentShardId": "trimmed-long-ago"},
    ]
    assert ready_shards(shards, set()) == ["a", "e"]
    assert ready_shards(shards, {"a"}) == ["b", "c", "e"]
    assert ready_shards(shards, {"a", "b"}) == ["c", "d", "e"]


def test_db_init_creates_the_tables_with_stream_and_ttl(
    moto_base: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = moto_base.replace("test:test@", "test:topsecret@")
    url = table_url(base)
    assert main(["db", "init", url]) == 0
    first = capsys.readouterr().out
    assert "created" in first and "topsecret" not in first
    assert main(["db", "init", url]) == 0  # idempotent
    assert "both existed" in capsys.readouterr().out
    assert main(["relay", "status", "--db", url]) == 0
    shown = capsys.readouterr().out
    assert "lease: free" in shown and "dead letters: 0" in shown
    config = DynamoConfig.from_url(url)

    async def described() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        async with config.client() as client:
            table = (await client.describe_table(TableName=config.table))["Table"]
            ttl = await client.describe_time_to_live(TableName=config.table)
            relay = (await client.describe_table(TableName=config.relay_table))["Table"]
            for name in (config.table, config.relay_table):
                await client.delete_table(TableName=name)
            return table, ttl, relay

    table, ttl, relay = asyncio.run(described())
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert ttl["TimeToLiveDescription"]["AttributeName"] == "expires_at"
    assert relay["TableName"] == config.relay_table


async def test_relay_without_tables_says_how_to_fix_it(moto_base: str) -> None:
    relay = DynamoDbStreamsRelay(table_url(moto_base), await memory())
    with pytest.raises(DynamoConfigError, match="servicewire db init"):
        await relay.run()


# The guarantees ---------------------------------------------------------------------------


async def test_per_key_order_with_the_handlers_own_items(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        transport = await memory()
        channel = unique("order")
        collector = await Collector.open(transport, channel)
        relay = await env.started(transport, batch_size=7)  # pages cut keys' runs apart
        orders = unique("orders").replace(".", "_")
        await env.client.create_table(
            TableName=orders,
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        try:
            messages = make_messages(channel, 200, keys=5)
            for i in range(0, 200, 20):
                order = {"Put": {"TableName": orders, "Item": {"id": {"S": f"o{i}"}}}}
                await env.write(messages[i : i + 20], per_tx=20, items=[order])
            await eventually(lambda: len(collector.unique_ids) == 200, 30, "all 200 messages")
            await relay.drain(20)
            assert collector.seqs_by_key() == {f"k{k}": list(range(k, 200, 5)) for k in range(5)}
            assert collector.duplicates == 0
            stored = await env.client.scan(TableName=orders)
            assert len(stored["Items"]) == 10  # the handler's items committed with them
        finally:
            await env.client.delete_table(TableName=orders)
        await collector.close()


async def test_cancelled_transaction_publishes_nothing(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        transport = await memory()
        channel = unique("cancel")
        collector = await Collector.open(transport, channel)
        doomed, kept = make_messages(channel, 2, keys=1)
        fails = {
            "ConditionCheck": {
                "TableName": env.config.relay_table,
                "Key": {"pk": {"S": "no-such-item"}},
                "ConditionExpression": "attribute_exists(pk)",
            }
        }
        # Before the relay starts: moto rolls a cancelled transaction back by putting
        # copies of the tables in place, stream included, so a shard iterator taken
        # earlier would read the discarded copy (an emulator artefact; AWS has no such
        # rollback, a cancelled transaction never reaches the stream).
        with pytest.raises(Exception, match="TransactionCanceled"):
            await env.write([doomed], items=[fails])
        relay = await env.started(transport)
        await env.write([kept])
        await eventually(lambda: kept.id in collector.counts, 20, "the committed message")
        await relay.drain(10)
        assert collector.unique_ids == {kept.id}
        await collector.close()


async def test_crash_between_publish_and_checkpoint_republishes(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        inner = await memory()
        transport = FlakyTransport(inner)
        channel = unique("crash")
        collector = await Collector.open(inner, channel)
        relay = await env.started(transport)
        transport.crashes_after_publish = 1
        messages = make_messages(channel, 30)
        await env.write(messages, per_tx=10)
        await eventually(lambda: len(collector.unique_ids) == 30, 30, "all 30 after the crash")
        await relay.drain(20)
        assert transport.crashed_batches, "the crash was not triggered"
        # Published, then the relay "died" before its checkpoint: published again.
        assert all(collector.counts[i] >= 2 for i in transport.crashed_batches[0])
        assert collector.unique_ids == {m.id for m in messages}
        assert collector.seqs_by_key() == {f"k{k}": list(range(k, 30, 4)) for k in range(4)}
        checkpoints = await env.relay_items("shard#")
        assert len(checkpoints) == 1 and "seq" in checkpoints[0]
        await collector.close()


async def test_broker_down_then_drains_in_key_order(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        await broker_down_then_drains_in_key_order(env)


async def test_partial_page_failure_keeps_key_order(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        await partial_failure_keeps_key_order(env)  # one transaction: 3 items, one page


async def test_restart_resumes_after_the_checkpoint(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        transport = await memory()
        channel = unique("resume")
        collector = await Collector.open(transport, channel)
        first = await env.started(transport)
        before = make_messages(channel, 10)
        await env.write(before, per_tx=5)
        await eventually(lambda: len(collector.unique_ids) == 10, 20, "the first 10")
        await first.drain(10)
        await first.stop()  # releases the lease: the next relay need not wait
        after = make_messages(channel, 10, start=10)
        await env.write(after, per_tx=5)
        started = time.monotonic()
        await env.started(transport, name="second")
        assert time.monotonic() - started < 4  # a released lease is taken at once
        await eventually(lambda: len(collector.unique_ids) == 20, 20, "the next 10")
        await env.relays[-1].drain(10)
        assert collector.duplicates == 0  # nothing before the checkpoint came again
        await collector.close()


async def test_standby_takes_over_and_the_former_owner_is_fenced(moto_base: str) -> None:
    """In one process: the owner hangs in a broker confirm and renews nothing (as if
    paused), the standby takes over after the lease; released, the former owner can
    neither publish another wave nor checkpoint."""
    async with dynamo_env(moto_base) as env:
        inner = await memory()
        channel = unique("takeover")
        collector = await Collector.open(inner, channel)
        froze, release = asyncio.Event(), asyncio.Event()

        class Hanging(FlakyTransport):
            async def _send_batch(self, messages: Any) -> None:
                await self.inner.publish_batch(messages)
                if not froze.is_set():
                    froze.set()
                    await release.wait()  # the first wave's confirm hangs

        owner = await env.started(Hanging(inner), lease_ttl=1.0, name="owner")
        lease = owner._lease
        assert lease is not None
        renew = lease.renew

        async def paused_renew() -> None:
            # While "paused" the owner's renewals do not reach DynamoDB either.
            if froze.is_set() and not release.is_set():
                await release.wait()
            await renew()

        lease.renew = paused_renew  # type: ignore[method-assign]
        messages = make_messages(channel, 40, keys=4)
        await env.write(messages[:20], per_tx=20)
        await eventually(froze.is_set, 20, "the owner's first wave")
        standby = await env.started(inner, lease_ttl=1.0, name="standby", takeover_interval=0.2)
        await env.write(messages[20:], per_tx=20)
        await eventually(lambda: len(collector.unique_ids) == 40, 30, "the standby to publish")
        holder = await StreamLease(env.client, env.config.relay_table, owner="x", ttl=1).holder()
        assert holder is not None and holder[0] == standby.owner and holder[1] == 2
        await standby.drain(10)
        count = len(collector.messages)
        release.set()  # the former owner runs again, mid-batch
        await eventually(lambda: not owner.active, 20, "the former owner to stand by")
        await asyncio.sleep(0.5)
        assert len(collector.messages) == count, "the fenced owner published again"
        assert collector.seqs_by_key() == {f"k{k}": list(range(k, 40, 4)) for k in range(4)}
        checkpoints = await env.relay_items("shard#")
        assert [c["owner"]["S"] for c in checkpoints] == [standby.owner]
        assert standby.active
        await collector.close()


async def test_a_former_owner_cannot_checkpoint(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        table = env.config.relay_table
        old = StreamLease(env.client, table, owner="old", ttl=0.3)
        new = StreamLease(env.client, table, owner="new", ttl=0.3)
        assert await old.try_acquire()
        assert not await new.try_acquire()  # first look: the holder may be alive
        await asyncio.sleep(0.4)  # old renews nothing for longer than the lease
        assert await new.try_acquire()
        checkpoint = {"pk": {"S": "shard#s1"}, "seq": {"S": "100"}}
        with pytest.raises(OwnershipLostError):
            await old.checkpoint(checkpoint)
        with pytest.raises(OwnershipLostError):
            await old.renew()
        assert not await env.relay_items("shard#")
        await new.checkpoint({"pk": {"S": "shard#s1"}, "seq": {"S": "200"}})
        assert [i["seq"]["S"] for i in await env.relay_items("shard#")] == ["200"]
        assert (await new.holder()) == ("new", 2, 1)


async def test_foreign_and_bad_items_are_dead_lettered_not_wedging(moto_base: str) -> None:
    async with dynamo_env(moto_base) as env:
        transport = await memory()
        channel = unique("bad")
        collector = await Collector.open(transport, channel)
        relay = await env.started(transport)
        good = make_messages(channel, 6, keys=1)
        bad_dest = Message.create(b"{}", destination="no such channel!", partition_key="x1")
        corrupt = Message.create(b"{}", destination=channel, partition_key="x2")
        corrupt_put = outbox_items([corrupt], table=env.config.table)[0]
        corrupt_put["Put"]["Item"]["messages"]["L"][0]["M"]["headers"] = {"S": '{"id": 17, "b'}
        foreign = {"Put": {"TableName": env.config.table, "Item": {"pk": {"S": "someone-else"}}}}
        await env.write(good[:2])
        await env.client.transact_write_items(TransactItems=[foreign])
        await env.write(good[2:3])
        await env.write([bad_dest])
        await env.client.transact_write_items(TransactItems=[corrupt_put])
        await env.client.delete_item(TableName=env.config.table, Key={"pk": {"S": "someone-else"}})
        await env.write(good[3:])
        await eventually(lambda: len(collector.unique_ids) == 6, 20, "the good messages")
        await relay.drain(10)
        assert collector.seqs_by_key() == {"k0": [0, 1, 2, 3, 4, 5]}
        dead = await env.relay_items("dead#")
        reasons = sorted(d["reason"]["S"] for d in dead)
        assert len(reasons) == 3, reasons
        assert "corrupt headers" in reasons[0]
        assert "destination not accepted" in reasons[1]
        assert "not a Servicewire outbox item" in reasons[2]
        by_id = {d["message"]["M"]["id"]["S"]: d for d in dead if "message" in d}
        assert set(by_id) == {bad_dest.id, corrupt.id}
        assert relay.moved_aside == 3
        status = await dynamodb_status(env.config)
        assert status["dead"] == 3 and status["lease"]["owner"] == relay.owner
        assert [s["finished"] for s in status["shards"].values()] == [False]
        await collector.close()


# The command line, with a paused owner -------------------------------------------------


async def test_cli_relays_and_a_stopped_owner_is_taken_over(moto_base: str) -> None:
    """Two ``servicewire relay --mode dynamodb-streams`` processes; the owner is SIGSTOPped
    mid-batch; the standby publishes everything; the resumed owner publishes at most the
    one wave it had already checked, and never checkpoints."""
    async with dynamo_env(moto_base) as env, sink() as (sink_url, client, key):
        start = {"db": env.url, "mode": "dynamodb-streams", "name": "cli"}
        messages = make_messages(unique("paused"), 480, keys=8)
        backlog, later = messages[:240], messages[240:]
        first = await RelayProcess.start(transport=f"{sink_url}&by=A&delay=0.5", **start)
        second: RelayProcess | None = None
        try:
            await eventually(lambda: first.active_at is not None, 30, f"A:\n{first.log}")
            # 8 items of 30 messages: one page, 30 waves of 8 at 0.5 s each.
            await env.write(backlog, per_tx=len(backlog))

            async def published() -> int:
                return len(await read_sink(client, key))

            async def first_wave_out() -> bool:
                return await published() > 0

            await eventually(first_wave_out, 30, "the first relay's first wave")
            second = await RelayProcess.start(transport=f"{sink_url}&by=B", **start)
            await eventually(lambda: second.started_at is not None, 30, "the standby")
            await asyncio.sleep(0.5)
            first.pause()
            await eventually(lambda: first.stopped, 10, "the first relay to stop")
            stopped_at = time.monotonic()
            await asyncio.sleep(0.2)
            before_stop = await published()
            assert 0 < before_stop < len(backlog), f"not mid-batch: {before_stop} published"
            await env.write(later, per_tx=40)
            everything = {m.id for m in messages}

            async def all_out() -> bool:
                return {i["id"] for i in await read_sink(client, key)} >= everything

            await eventually(all_out, 40, f"B to publish everything:\n{second.log}")
            took = time.monotonic() - stopped_at
            entries = await read_sink(client, key)
            count = len(entries)
            first.resume()
            await eventually(
                lambda: first.logged("OwnershipLostError"), 20, f"A to notice:\n{first.log}"
            )
            await asyncio.sleep(1.0)
            entries = await read_sink(client, key)
            late = [e for e in entries[count:] if e.get("by") == "A"]
            print(f"takeover {took:.2f}s after SIGSTOP; the resumed owner sent {len(late)}")
            assert len(late) <= 8, f"the resumed owner sent {len(late)} messages"
            assert first_seen_by_key(entries) == expected_by_key(messages)
            checkpoints = await env.relay_items("shard#")
            assert [c["owner"]["S"].split("@")[0] for c in checkpoints] == ["cli"]
            holder = await StreamLease(
                env.client, env.config.relay_table, owner="x", ttl=1
            ).holder()
            assert holder is not None and holder[1] == 2  # B's epoch; A never took it back
            assert took < 30
            assert await first.terminate() == 0
            assert await second.terminate() == 0
        finally:
            first.resume()
            await first.kill()
            if second is not None:
                await second.kill()
