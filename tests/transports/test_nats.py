"""The NATS JetStream transport passes the contract suite, restarts included, plus faults.

The suite runs against a PRIVATE nats-server (own port, own store directory) started by
the module fixture, so the restart test can stop and start it without touching the
shared server on 4222, and every stream the tests create goes away with the temp dir.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nats.aio.client import Client

from servicewire.errors import (
    ConnectionFailedError,
    InvalidNameError,
    MessageTooLargeError,
    TransportError,
)
from servicewire.testing.contract.helpers import Member, eventually, make_message, unique
from servicewire.transports import connect_transport, transport_from_url
from servicewire.transports.base import Transport
from servicewire.transports.nats.client import FastHeadersClient
from servicewire.transports.nats.headers import from_nats, header_block, to_nats
from servicewire.transports.nats.names import encode_name, shard_subject
from servicewire.transports.nats.transport import NatsTransport
from tests.contract import RestartContract, TransportContract, TransportSpec
from tests.services import require

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class PrivateNats:
    """A nats-server of the test's own, with JetStream, on a free loopback port."""

    def __init__(self, extra: list[str] | None = None, config: str | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="sw-nats-"))
        self.port = _free_port()
        self.args = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port), "-js"]
        self.args += ["-sd", str(self.dir / "store"), *(extra or [])]
        if config is not None:
            path = self.dir / "server.conf"
            path.write_text(config)
            self.args += ["-c", str(path)]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.dir / "server.log", "ab")  # closed by the OS when the server exits
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=log)
        deadline = time.monotonic() + 15
        while not _port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private nats-server did not start: {self.args}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    async def restart(self) -> None:
        await asyncio.to_thread(self.stop)
        await asyncio.sleep(0.3)
        await asyncio.to_thread(self.start)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def private_nats() -> Iterator[PrivateNats]:
    require("nats")
    server = PrivateNats()
    server.start()
    try:
        yield server
    finally:
        server.remove()


class TestNatsContract(TransportContract, RestartContract):
    @pytest.fixture
    def spec(self, private_nats: PrivateNats) -> TransportSpec:
        url = private_nats.url + "?lease_ttl=3&ack_wait=10"

        async def make() -> Transport:
            return await connect_transport(url)

        return TransportSpec(
            make=make, restart_broker=private_nats.restart, settle_time=0.5, timeout=30.0
        )


# History both ways ----------------------------------------------------------------------


async def test_history_all_replays_to_a_new_group(private_nats: PrivateNats) -> None:
    transport = await connect_transport(private_nats.url + "?history=all")
    try:
        assert transport.capabilities.replays_history
        channel = unique("replay")
        sent = [make_message(channel, i, key="k") for i in range(5)]
        await transport.publish_batch(sent)
        member = Member(await transport.subscribe(channel, unique("late")))
        try:
            await eventually(lambda: len(member.acked) >= 5, 20, "the old messages")
            assert [m.id for m in member.acked] == [m.id for m in sent]
        finally:
            await member.stop()
    finally:
        await transport.close()


# Faults and bad input -------------------------------------------------------------------


async def test_refused_connection_names_transport_and_redacted_address() -> None:
    port = _free_port()  # nothing listens here
    with pytest.raises(ConnectionFailedError) as info:
        await connect_transport(f"nats://app:s3cret@127.0.0.1:{port}?connect_timeout=2")
    text = str(info.value)
    assert "nats" in text and f"127.0.0.1:{port}" in text
    assert "s3cret" not in text and "***" in text


async def test_bad_credentials_are_a_connection_error() -> None:
    require("nats")
    server = PrivateNats(extra=["--user", "app", "--pass", "right"])
    server.start()
    try:
        with pytest.raises(ConnectionFailedError) as info:
            await connect_transport(f"nats://app:wrong@127.0.0.1:{server.port}?connect_timeout=2")
        assert "wrong" not in str(info.value) and "nats" in str(info.value)
        good = await connect_transport(f"nats://app:right@127.0.0.1:{server.port}")
        await good.close()
    finally:
        server.remove()


def test_bad_url_options_are_refused() -> None:
    with pytest.raises(TransportError, match="unknown option"):
        transport_from_url("nats://127.0.0.1:4222?shard=3")
    with pytest.raises(TransportError, match="shards"):
        transport_from_url("nats://127.0.0.1:4222?shards=0")
    with pytest.raises(TransportError, match="names no server"):
        transport_from_url("nats://")


async def test_server_max_payload_is_respected_before_the_server() -> None:
    require("nats")
    server = PrivateNats(config="max_payload: 4096\n")
    server.start()
    try:
        transport = await connect_transport(server.url)
        try:
            channel = unique("maxpay")
            await transport.declare(channel, "g")
            # Under our own 1 MiB limit, over the server's 4 KiB: refused here, typed.
            with pytest.raises(MessageTooLargeError) as info:
                await transport.publish(make_message(channel, 0, size=5000))
            assert info.value.limit == 4096
            await transport.publish(make_message(channel, 1, size=1000))  # still works
        finally:
            await transport.close()
    finally:
        server.remove()


async def test_foreign_message_is_delivered(private_nats: PrivateNats) -> None:
    import nats

    transport = await connect_transport(private_nats.url)
    raw = await nats.connect(private_nats.url)
    try:
        channel, group = unique("foreign"), unique("g")
        member = Member(await transport.subscribe(channel, group))
        try:
            js = raw.jetstream()
            await js.publish(shard_subject(channel, 0), b"hello", headers={"X-Origin": "go"})
            await js.publish(shard_subject(channel, 1), b"bare")
            await eventually(lambda: len(member.acked) >= 2, 20, "the foreign messages")
            got = {m.payload: m for m in member.acked}
            assert got[b"hello"].headers["X-Origin"] == "go"
            assert got[b"hello"].destination == channel and got[b"hello"].id
            assert got[b"bare"].id != got[b"hello"].id
        finally:
            await member.stop()
    finally:
        await raw.close()
        await transport.close()


async def test_unsettled_deliveries_come_back_promptly_after_close(
    private_nats: PrivateNats,
) -> None:
    # ack_wait is long: a prompt redelivery proves close() handed the message back.
    url = private_nats.url + "?ack_wait=60"
    transport = await connect_transport(url)
    try:
        channel, group = unique("handback"), unique("g")
        sub = await transport.subscribe(channel, group)
        await transport.publish(make_message(channel, 0, key="k"))
        async with asyncio.timeout(20):
            async for delivery in sub:
                first = delivery
                break
        await sub.close()
        with pytest.raises(InvalidNameError):
            await transport.publish(make_message("bad name!", 1))
        member = Member(await transport.subscribe(channel, group))
        try:
            await eventually(lambda: len(member.acked) >= 1, 10, "the redelivery")
            assert member.acked[0].id == first.message.id
        finally:
            await member.stop()
    finally:
        await transport.close()


async def test_shards_move_when_a_member_crashes(private_nats: PrivateNats) -> None:
    # A member whose connection dies keeps no lease: after lease_ttl its shards move to
    # the survivor, and what it held unacked comes back after ack_wait.
    url = private_nats.url + "?lease_ttl=2&ack_wait=3"
    crashing, survivor = await connect_transport(url), await connect_transport(url)
    assert isinstance(crashing, NatsTransport)
    channel, group = unique("crash"), unique("g")
    try:
        doomed = await crashing.subscribe(channel, group)
        held: list[str] = []

        async def hold_one() -> None:
            async for delivery in doomed:
                held.append(delivery.message.id)  # never settled: the process "dies"
                return

        holder = asyncio.create_task(hold_one())
        member = Member(await survivor.subscribe(channel, group))
        try:
            await asyncio.sleep(1.0)  # both see each other: shards are split
            sent = [make_message(channel, i, key=f"k{i % 16}") for i in range(160)]
            await survivor.publish_batch(sent)
            await eventually(lambda: bool(held), 20, "a delivery on the doomed member")
            await crashing.nc.close()  # the crash: no NAK, no lease purge
            await eventually(
                lambda: {m.id for m in member.acked} >= {m.id for m in sent},
                30,
                "every message on the survivor",
            )
            assert held[0] in {m.id for m in member.acked}
        finally:
            holder.cancel()
            await member.stop()
    finally:
        await crashing.close()
        await survivor.close()


# Pure helpers ---------------------------------------------------------------------------


def test_names_are_reversible_and_safe() -> None:
    assert encode_name("a.b") != encode_name("a_b") != encode_name("a:b")
    assert set(encode_name("ftgo.order:v1_x")) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    )
    assert len(encode_name("x" * 200)) <= 120


def test_headers_round_trip_with_awkward_values() -> None:
    message = make_message("c", 1, key="key-ü").with_header_map(
        {"custom": ' spaced %20 "quoted" ', "Mixed-Case": "v"}
    )
    back = from_nats(to_nats(message), message.payload, channel="c", fallback_id="x")
    assert back.headers == message.headers and back.id == message.id
    # the bytes the publish path sends carry exactly the same headers
    block = header_block(message).decode()
    assert block.startswith("NATS/1.0\r\n") and block.endswith("\r\n\r\n")
    lines = dict(line.split(": ", 1) for line in block.split("\r\n")[1:] if line)
    assert lines == to_nats(message)


def test_fast_header_parser_keeps_nats_py_rules() -> None:
    raw = b"ce-id: 1\r\nBad Name: x\r\n: empty\r\nplain:no-space\r\nv: \xc3\xbc \r\n\r\n"
    parsed = FastHeadersClient._parse_header_lines(raw)
    assert parsed == Client._parse_header_lines(raw)
    assert parsed == {"ce-id": "1", "": "empty", "plain": "no-space", "v": "ü"}


async def test_works_against_the_shared_server() -> None:
    require("nats")
    from tests.services import URLS

    transport = await connect_transport(URLS["nats"])
    assert isinstance(transport, NatsTransport)
    channel, group = unique("shared"), unique("g")
    try:
        member = Member(await transport.subscribe(channel, group))
        try:
            sent = [make_message(channel, i, key="k") for i in range(20)]
            await transport.publish_batch(sent)
            await eventually(lambda: len(member.acked) >= 20, 20, "20 messages")
            assert [m.id for m in member.acked] == [m.id for m in sent]
        finally:
            await member.stop()
    finally:
        await transport.delete_channel(channel)  # leave nothing behind on the shared server
        await transport.close()
