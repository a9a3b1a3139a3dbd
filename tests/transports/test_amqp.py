"""The RabbitMQ transport passes the contract suite, broker restarts included, plus faults.

The contract suite runs against a PRIVATE RabbitMQ node started by the module fixture
(own node name, AMQP and distribution ports, data and logs in a temp dir, no plugins),
so the restart test can stop and start it without disturbing the shared broker on
:5672 that others use; everything the suite declares goes away with the temp dir. The
fault tests use the shared broker with unique names and delete what they declare.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aio_pika
import pytest

from servicewire.errors import (
    ConnectionFailedError,
    MessageTooLargeError,
    PublishError,
    TransportError,
)
from servicewire.messaging.channels import shard_for
from servicewire.messaging.message import Message
from servicewire.testing.contract import AttemptContract
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.timeouts import within
from servicewire.transports import connect_transport
from servicewire.transports.amqp.headers import decode, encode
from servicewire.transports.amqp.transport import AmqpTransport
from servicewire.transports.base import Delivery, Transport
from tests.contract import RestartContract, TransportContract, TransportSpec
from tests.services import URLS, require, services_required
from tests.tcp_proxy import TcpProxy

SERVER = os.environ.get("RABBITMQ_SERVER_BIN", "/usr/lib/rabbitmq/bin/rabbitmq-server")


def available() -> bool:
    return os.access(SERVER, os.X_OK) and shutil.which("erl") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class PrivateRabbit:
    """A RabbitMQ node of the test's own; restartable; data in ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = _free_port()
        self.dist_port = _free_port()
        self.node = f"swtest-{uuid.uuid4().hex[:8]}@localhost"
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        self._proc: subprocess.Popen[bytes] | None = None
        (base / "enabled_plugins").write_text("[].\n")
        (base / "env.conf").write_text("")
        (base / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
        )

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        base = str(self.base)
        env.update(
            HOME=base,  # the Erlang cookie lives here, not in the user's home
            RABBITMQ_CONF_ENV_FILE=f"{base}/env.conf",
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=f"{base}/mnesia",
            RABBITMQ_LOG_BASE=f"{base}/log",
            RABBITMQ_CONFIG_FILE=f"{base}/rabbitmq.conf",
            RABBITMQ_ENABLED_PLUGINS_FILE=f"{base}/enabled_plugins",
            RABBITMQ_PLUGINS_EXPAND_DIR=f"{base}/plugins",
            ERL_EPMD_ADDRESS="127.0.0.1",
            ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def start(self, timeout: float = 60.0) -> None:
        log = open(self.base / "server.out", "ab")
        self._proc = subprocess.Popen(
            [SERVER],
            cwd=self.base,
            env=self._env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped by that id only
        )
        log.close()
        deadline = time.monotonic() + timeout
        while not _port_open(self.port):
            if self._proc.poll() is not None:
                raise RuntimeError(f"private RabbitMQ exited: {self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"private RabbitMQ not up in {timeout:.0f}s: {self.tail()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 60.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)  # RabbitMQ shuts down cleanly on SIGTERM
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        # The Erlang VM may outlive the script by a moment; the port tells.
        deadline = time.monotonic() + timeout
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def restart(self) -> None:
        self.stop()
        self.start()

    def tail(self) -> str:
        try:
            return (self.base / "server.out").read_text(errors="replace")[-2000:]
        except OSError:
            return ""


# The contract suite on a private node ------------------------------------------------


@pytest.fixture(scope="module")
def private_rabbit() -> Iterator[PrivateRabbit]:
    if not available():
        message = f"no RabbitMQ server binary at {SERVER} to run a private node"
        if services_required():
            pytest.fail(message)
        pytest.skip(message)
    base = Path(tempfile.mkdtemp(prefix="sw-rabbit-"))
    node = PrivateRabbit(base)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


class TestAmqpContract(TransportContract, RestartContract):
    @pytest.fixture
    def spec(self, private_rabbit: PrivateRabbit) -> TransportSpec:
        # Short member heartbeats: shards move quickly when the suite's members churn.
        url = private_rabbit.url + "?member_interval=0.5&member_timeout=2&reconnect_delay=0.5"

        async def make() -> Transport:
            return await connect_transport(url)

        async def restart() -> None:
            await asyncio.to_thread(private_rabbit.restart)

        return TransportSpec(make=make, restart_broker=restart, settle_time=0.5, timeout=60.0)


class TestAmqpClassicQueueAttempts(AttemptContract):
    """Classic queues have no delivery count, only a "redelivered" flag: the attempt
    cases (a poison message dead-lettered after N attempts, the count surviving a
    consumer restart) on ``?queue_type=classic``."""

    @pytest.fixture
    def spec(self, private_rabbit: PrivateRabbit) -> TransportSpec:
        url = private_rabbit.url + "?queue_type=classic&member_interval=0.5&member_timeout=2"
        return TransportSpec.for_url(url, settle_time=0.5, timeout=60.0)


async def test_delayed_retry_keeps_its_place_with_a_delivery_limit(
    private_rabbit: PrivateRabbit,
) -> None:
    # With ?delivery_limit the broker counts deliveries, so a nacked message goes back to
    # it after the delay instead of staying with the member. A member joining during the
    # delay must still not get the key's next message first (cancel-then-nack did that:
    # "k2 out of order: [0, 2, 1, 3, 4]").
    url = private_rabbit.url + "?member_interval=0.5&member_timeout=2&delivery_limit=20"
    spec = TransportSpec.for_url(url, settle_time=0.5)
    transport = await spec.make()
    try:
        # Asserts each key's first-seen order (and that retries were waiting) inside.
        await TransportContract().test_delayed_retry_keeps_its_place_when_a_member_joins(
            transport, spec
        )
        assert transport.capabilities.ordered_per_key  # so the order check above ran
    finally:
        await transport.close()


# Faults and mapping, on the shared broker ----------------------------------------------


Shared = tuple[AmqpTransport, list[tuple[str, str]]]


@pytest.fixture
async def shared() -> AsyncIterator[Shared]:
    """A client of the shared broker, and a list of (channel, group) deleted afterwards."""
    require("rabbitmq")
    transport = await connect_transport(URLS["rabbitmq"])
    assert isinstance(transport, AmqpTransport)
    created: list[tuple[str, str]] = []
    try:
        yield transport, created
    finally:
        cleaner = await connect_transport(URLS["rabbitmq"])
        assert isinstance(cleaner, AmqpTransport)
        for channel, group in created:
            try:
                await cleaner.delete_group(channel, group)
                await cleaner.delete_channel(channel)  # with its .dlq channel
            except TransportError:
                pass
        await cleaner.close()
        await transport.close()


def _with_password(url: str, password: str) -> str:
    return url.replace("guest:guest@", f"guest:{password}@")


async def test_refused_connection_names_transport_and_hides_password() -> None:
    url = "amqp://guest:s3cr3t-pw@127.0.0.1:1/"
    with pytest.raises(ConnectionFailedError) as info:
        await connect_transport(url)
    text = str(info.value)
    assert "amqp" in text and "127.0.0.1:1" in text and "refused" in text
    assert "s3cr3t-pw" not in text and "***" in text


async def test_bad_credentials_are_a_clear_error() -> None:
    require("rabbitmq")
    url = _with_password(URLS["rabbitmq"], "wr0ng-pw")
    with pytest.raises(ConnectionFailedError) as info:
        await connect_transport(url)
    text = str(info.value)
    assert "authentication" in text and "wr0ng-pw" not in text, text


async def test_wrong_vhost_is_a_clear_error() -> None:
    require("rabbitmq")
    url = URLS["rabbitmq"].rstrip("/") + "/no-such-vhost-" + uuid.uuid4().hex[:6]
    with pytest.raises(ConnectionFailedError) as info:
        await connect_transport(url)
    assert "virtual host" in str(info.value) and "guest:***@" in str(info.value)


async def test_bad_url_option_is_refused() -> None:
    with pytest.raises(TransportError, match="shards"):
        await connect_transport("amqp://guest:pw@127.0.0.1:5672/?shards=zero")


async def test_oversized_message_never_reaches_the_broker(shared: Shared) -> None:
    transport, created = shared
    channel, group = unique("amqp-big"), "g"
    created.append((channel, group))
    await transport.declare(channel, group)
    with pytest.raises(MessageTooLargeError) as info:
        await transport.publish(make_message(channel, 0, size=transport.max_message_size + 1))
    assert channel in str(info.value)
    conn = await aio_pika.connect(URLS["rabbitmq"])
    try:
        ch = await conn.channel()
        total = 0
        for shard in range(transport.options.shards):
            queue = await ch.declare_queue(f"{channel}/{group}/{shard}", passive=True)
            total += queue.declaration_result.message_count or 0
        assert total == 0
    finally:
        await conn.close()


async def test_a_broker_gone_silent_fails_a_publish_within_publish_timeout(
    shared: Shared,
) -> None:
    # A connection that stays open but carries nothing back (a frozen broker, a stuck
    # network): the confirm never comes, and the publish must fail in publish_timeout,
    # not wait for heartbeats or forever.
    _transport, created = shared
    channel, group = unique("amqp-silent"), "g"
    created.append((channel, group))
    host, port = "127.0.0.1", int(URLS["rabbitmq"].rsplit(":", 1)[1].split("/")[0])
    async with TcpProxy(host, port) as proxy:
        url = URLS["rabbitmq"].replace(f":{port}", f":{proxy.port}")
        transport = await connect_transport(f"{url}?publish_timeout=1&heartbeat=60")
        try:
            await transport.declare(channel, group)
            await transport.publish(make_message(channel, 0))  # the path is warm
            proxy.freeze()
            started = time.monotonic()
            with pytest.raises(PublishError, match="did not confirm"):
                await within(transport.publish(make_message(channel, 1)), 15)
            assert time.monotonic() - started < 5
        finally:
            proxy.thaw()
            await transport.close()


async def test_headers_follow_the_cloudevents_amqp_binding() -> None:
    message = Message.create(
        b"{}",
        destination="orders",
        type="ftgo.OrderCreated",
        partition_key="o-1",
        extra={"custom": "x"},
    )
    body, props = encode(message)
    assert props.message_id == message.id and props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.headers is not None
    assert props.headers["cloudEvents:type"] == "ftgo.OrderCreated"
    assert props.headers["cloudEvents:partitionkey"] == "o-1"
    assert props.headers["cloudEvents:custom"] == "x"
    assert props.headers["cloudEvents:id"] == message.id  # the binding maps id to a header
    again = decode(body, props, "orders")
    assert again == message


async def test_foreign_message_is_delivered(shared: Shared) -> None:
    transport, created = shared
    channel, group = unique("amqp-foreign"), "g"
    created.append((channel, group))
    sub = await transport.subscribe(channel, group)
    member = Member(sub)
    conn = await aio_pika.connect(URLS["rabbitmq"])
    try:
        ch = await conn.channel()
        exchange = await ch.get_exchange(channel)
        plain = aio_pika.Message(
            b"hello from elsewhere",
            headers={"origin": "legacy", "n": 7},
            correlation_id="c-9",
            content_type="text/plain",
        )
        await exchange.publish(plain, routing_key="any.key")  # no shard key: unrouted
        await exchange.publish(aio_pika.Message(b"bare"), routing_key="")
        await eventually(lambda: len(member.acked) >= 2, 30, "the foreign messages")
        first = next(m for m in member.acked if m.payload == b"hello from elsewhere")
        assert first.destination == channel and first.content_type == "text/plain"
        assert first.headers["origin"] == "legacy" and first.headers["n"] == "7"
        assert first.correlation_id == "c-9" and first.id
        bare = next(m for m in member.acked if m.payload == b"bare")
        assert bare.content_type == "application/octet-stream"
    finally:
        await conn.close()
        await member.stop()


async def test_rejected_messages_reach_the_dead_letter_exchange(shared: Shared) -> None:
    transport, created = shared
    channel, group = unique("amqp-dlx"), "billing"
    created.append((channel, group))

    async def refuse(delivery: Delivery) -> None:
        await delivery.reject()  # type: ignore[attr-defined]

    member = Member(await transport.subscribe(channel, group), refuse)
    dead = Member(await transport.subscribe(f"{channel}.dlq", "dead-letters"))
    try:
        sent = make_message(channel, 1, key="k")
        await transport.publish(sent)
        await eventually(lambda: len(dead.acked) >= 1, 30, "the dead letter")
        got = dead.acked[0]
        assert got.id == sent.id and got.payload == sent.payload
        assert "rejected" in got.headers["dlqreason"]
        assert got.headers["dlqchannel"] == channel and got.headers["dlqgroup"] == group
        assert got.destination == f"{channel}.dlq"
    finally:
        await member.stop()
        await dead.stop()


async def test_delivery_limit_dead_letters_after_too_many_attempts() -> None:
    require("rabbitmq")
    transport = await connect_transport(URLS["rabbitmq"] + "?delivery_limit=2")
    assert isinstance(transport, AmqpTransport)
    channel, group = unique("amqp-limit"), "g"
    attempts: list[int] = []

    async def fail(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        await delivery.nack()

    member = Member(await transport.subscribe(channel, group), fail)
    dead = Member(await transport.subscribe(f"{channel}.dlq", "dead-letters"))
    try:
        await transport.publish(make_message(channel, 1))
        await eventually(lambda: len(dead.acked) >= 1, 30, "the dead letter")
        assert attempts == [1, 2, 3], attempts
        assert "delivery_limit" in dead.acked[0].headers["dlqreason"]
    finally:
        await member.stop()
        await dead.stop()
        await transport.delete_group(channel, group)
        await transport.delete_channel(channel)
        await transport.close()


async def test_shards_spread_across_members_and_move_when_one_leaves(shared: Shared) -> None:
    transport, created = shared
    channel, group = unique("amqp-spread"), "g"
    created.append((channel, group))
    subs = [await transport.subscribe(channel, group) for _ in range(4)]

    def held() -> list[set[int]]:
        return [set(s._consumers) for s in subs]  # type: ignore[attr-defined]

    def dealt(active: list[object]) -> bool:
        sets = [set(s._consumers) for s in active]  # type: ignore[attr-defined]
        every = set().union(*sets)
        return every == set(range(16)) and sum(map(len, sets)) == 16 and all(sets)

    try:
        await eventually(lambda: dealt(subs), 20, f"disjoint shards, got {held()}")
        await subs[0].close()
        rest = subs[1:]
        await eventually(lambda: dealt(rest), 20, "the leaver's shards to move")
        assert set().union(*held()[1:]) == set(range(16))  # the leaver's shards moved
    finally:
        for sub in subs:
            await sub.close()


async def test_per_key_order_holds_while_members_join_and_leave(shared: Shared) -> None:
    """Shards move (markers for idle shards, cancel-before-ack for busy ones) in order."""
    transport, created = shared
    channel, group = unique("amqp-churn-order"), "g"
    created.append((channel, group))
    seen: dict[str, list[int]] = {}

    async def handler(delivery: Delivery) -> None:
        message = delivery.message
        seen.setdefault(message.partition_key or "", []).append(int(message.headers["seq"]))
        await asyncio.sleep(0.002)
        await delivery.ack()

    members = [Member(await transport.subscribe(channel, group), handler)]
    keys = [f"key-{k}" for k in range(6)]
    per_key = 60

    async def publish() -> None:
        for i in range(per_key):
            for key in keys:
                await transport.publish(make_message(channel, i, key=key))
            await asyncio.sleep(0.01)

    publishing = asyncio.create_task(publish())
    try:
        for _ in range(2):
            await asyncio.sleep(0.3)
            members.append(Member(await transport.subscribe(channel, group), handler))
        await asyncio.sleep(0.3)
        await members.pop(0).stop()  # the oldest member leaves: all its shards move
        await publishing
        await eventually(
            lambda: all(len(set(seen.get(k, []))) >= per_key for k in keys), 60, "every key"
        )
        for key in keys:
            first_seen = list(dict.fromkeys(seen[key]))
            assert first_seen == list(range(per_key)), f"{key} out of order: {first_seen}"
        assert sum(1 for m in members if m.deliveries) >= 2
    finally:
        publishing.cancel()
        for member in members:
            await member.stop()


async def test_a_stand_by_member_lets_go_of_shards_it_does_not_own(shared: Shared) -> None:
    """A member that queued up behind the active one learns so and cancels."""
    transport, created = shared
    channel, group = unique("amqp-standby"), "g"
    created.append((channel, group))
    first = await transport.subscribe(channel, group)
    second = await transport.subscribe(channel, group)
    subs = [first, second]

    def dealt() -> bool:
        sets = [set(s._consumers) for s in subs]  # type: ignore[attr-defined]
        return set().union(*sets) == set(range(16)) and sum(map(len, sets)) == 16

    try:
        await eventually(dealt, 20, "the first deal")
        # Make the second member believe for a moment that it is alone: it registers
        # (stand-by) consumers on the first member's shards too.
        view = second._membership  # type: ignore[attr-defined]
        second._on_members([second.member_id])  # type: ignore[attr-defined]
        await eventually(lambda: len(second._consumers) == 16, 10, "stand-by consumers")  # type: ignore[attr-defined]
        second._on_members(view.members())  # type: ignore[attr-defined]
        # Its markers reach the active first member, which tells it to let go: well
        # before the periodic marker resend (member_timeout) could matter.
        await eventually(dealt, 3, "the stand-by consumers to be cancelled")
        assert len(second._consumers) < 16  # type: ignore[attr-defined]
    finally:
        for sub in subs:
            await sub.close()


async def test_prefetch_caps_what_the_application_holds(shared: Shared) -> None:
    transport, created = shared
    channel, group = unique("amqp-prefetch"), "g"
    created.append((channel, group))
    keys: dict[int, str] = {}
    for i in range(1000):  # four keys on four different shards
        keys.setdefault(shard_for(f"k{i}", transport.options.shards), f"k{i}")
        if len(keys) == 4:
            break
    held: list[Delivery] = []

    async def hold(delivery: Delivery) -> None:
        held.append(delivery)

    member = Member(await transport.subscribe(channel, group, prefetch=2), hold)
    try:
        for key in keys.values():
            await transport.publish(make_message(channel, 0, key=key))
        await eventually(lambda: len(held) >= 2, 30, "two deliveries")
        await asyncio.sleep(0.5)
        assert len(held) == 2, "more unsettled deliveries than prefetch=2"
        await held[0].ack()
        await eventually(lambda: len(held) >= 3, 30, "a third once one is settled")
        for delivery in list(held):
            await delivery.ack()
        await eventually(lambda: len(held) >= 4, 30, "the fourth")
    finally:
        await member.stop()
