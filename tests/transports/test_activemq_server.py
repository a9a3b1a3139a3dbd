"""The private ActiveMQ the broker tests start: loopback only, own data, restartable.

One broker serves the whole run (``activemq`` in tests/conftest.py: a JVM takes seconds to
start); the restart case restarts that one, never the system's ActiveMQ service.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

import pytest

from servicewire.errors import TransportError
from servicewire.testing.activemq import broker_xml
from servicewire.timeouts import within
from tests.activemq import PrivateActiveMQ, available_connectors, require_activemq


class Stomp:
    """Just enough STOMP 1.2 to prove the broker keeps a message (frames end in NUL)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Stomp:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client.send("CONNECT", {"accept-version": "1.2", "host": "localhost"})
        command, _, _ = await client.frame()
        assert command == "CONNECTED"
        return client

    async def send(self, command: str, headers: dict[str, str], body: bytes = b"") -> None:
        head = "".join(f"{k}:{v}\n" for k, v in headers.items())
        self.writer.write(f"{command}\n{head}\n".encode() + body + b"\x00")
        await self.writer.drain()

    async def frame(self) -> tuple[str, dict[str, str], bytes]:
        raw = await within(self.reader.readuntil(b"\x00"), 10.0)
        head, _, body = raw[:-1].lstrip(b"\n").partition(b"\n\n")
        command, *lines = head.decode().split("\n")
        return command, dict(line.split(":", 1) for line in lines), body

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def listening_addresses(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def _address(hexed: str) -> str:
    """/proc/net/tcp{,6} addresses: 32-bit words in little-endian order."""
    words = [bytes.fromhex(hexed[i : i + 8])[::-1] for i in range(0, len(hexed), 8)]
    raw = b"".join(words)
    if len(raw) == 4:
        return ".".join(map(str, raw))
    if raw[:12] == b"\x00" * 10 + b"\xff\xff":  # IPv4-mapped IPv6
        return ".".join(map(str, raw[12:]))
    return "::1" if raw == b"\x00" * 15 + b"\x01" else raw.hex()


async def test_serves_only_its_connectors_on_loopback(activemq: PrivateActiveMQ) -> None:
    assert activemq.pid is not None
    # Only the STOMP connector: no OpenWire 61616, no web console 8161, no JMX 1099.
    assert listening_addresses(activemq.pid) == {("127.0.0.1", activemq.ports["stomp"])}
    client = await Stomp.connect(activemq.ports["stomp"])
    await client.close()


async def test_data_and_config_live_in_its_own_directory(activemq: PrivateActiveMQ) -> None:
    config = (activemq.directory / "conf" / "activemq.xml").read_text()
    assert 'useJmx="false"' in config and "jetty" not in config
    assert (activemq.directory / "data" / "kahadb").is_dir()  # KahaDB is ours, not /var/lib


async def test_restart_keeps_a_persistent_message(activemq: PrivateActiveMQ) -> None:
    queue = f"/queue/sw-restart-{uuid.uuid4().hex[:8]}"
    port = activemq.ports["stomp"]
    sender = await Stomp.connect(port)
    await sender.send(
        "SEND", {"destination": queue, "persistent": "true", "receipt": "r1"}, b"kept"
    )
    assert (await sender.frame())[0] == "RECEIPT"  # the broker stored it
    await sender.close()
    await activemq.restart()
    assert activemq.ports["stomp"] == port
    reader = await Stomp.connect(port)
    try:
        await reader.send("SUBSCRIBE", {"id": "0", "destination": queue, "ack": "auto"})
        command, headers, body = await reader.frame()
        assert (command, body) == ("MESSAGE", b"kept")
        assert headers["destination"] == queue
    finally:
        await reader.close()


async def test_a_connector_the_installation_lacks_is_refused_by_name() -> None:
    require_activemq()
    assert {"tcp", "stomp"} <= available_connectors()
    with pytest.raises(TransportError, match="no-such-proto connector"):
        PrivateActiveMQ(connectors=("stomp", "no-such-proto"))


async def test_a_broker_that_cannot_start_is_an_error_with_its_log() -> None:
    require_activemq()
    broker = PrivateActiveMQ(connectors=("stomp",))
    # A config the broker refuses: it exits, and start says why instead of waiting.
    (broker.directory / "conf" / "activemq.xml").write_text("<beans><broken", encoding="utf-8")
    try:
        with pytest.raises(TransportError, match="did not serve"):
            await broker.start(timeout=60)
        assert broker.pid is None  # stopped, nothing left running
    finally:
        await broker.close()


async def test_configuration_binds_each_connector_to_loopback(tmp_path: Path) -> None:
    xml = broker_xml(tmp_path, {"stomp": 1234, "amqp": 5678})
    assert 'uri="stomp://127.0.0.1:1234?' in xml and 'uri="amqp://127.0.0.1:5678?' in xml
    assert "0.0.0.0" not in xml and 'useJmx="false"' in xml
