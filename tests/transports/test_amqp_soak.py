"""A RabbitMQ node carries a sized topology under service churn (issue 16).

On a private node: many channels with two groups each (``shards=4``, the sizing rule in
docs/transports/amqp.md), then services that start, make a request, answer it and stop,
over and over. Throughout, the node answers AMQP handshakes in under a second; at the
end it holds exactly the queues and exchanges it held before the churn (no instance
leaves its reply channel behind), and its memory has not kept growing.

``make test`` runs a slice (20 channels x 2 groups, 5 cycles); the full run (300
channels x 2 groups, 50 cycles) is ``@pytest.mark.soak`` (``make soak``).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiormq
import pytest

from servicewire import Context, Service
from servicewire.transports import connect_transport
from tests.broker_objects import rabbit_objects
from tests.service.contracts import CreateTicket, TicketCreated
from tests.transports.test_amqp import PrivateRabbit
from tests.transports.test_amqp import private_rabbit as private_rabbit  # the module fixture

GROUPS = ("billing", "audit")
SHARDS = 4


@dataclass
class Readings:
    handshakes: list[float] = field(default_factory=list)
    """Seconds each AMQP handshake (connect, open, close) took."""
    memory: list[int] = field(default_factory=list)
    """The node's resident memory after each cycle, in bytes."""
    objects: int = 0
    """Queues and exchanges on the node before the churn."""


def node_memory(node: PrivateRabbit) -> int:
    """Resident memory of the node's Erlang VM (found by its process group)."""
    assert node._proc is not None
    group = node._proc.pid  # start_new_session: the script leads its own group
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != group:  # pgrp
                continue
            status = (entry / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue  # the process ended meanwhile
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
    return total


async def handshake(url: str) -> float:
    """Seconds for a fresh AMQP connection to open and close (bounded at 30)."""
    started = time.perf_counter()
    async with asyncio.timeout(30):
        connection = await aiormq.connect(url)
        await connection.close()
    return time.perf_counter() - started


async def churn(node: PrivateRabbit, channels: int, cycles: int) -> Readings:
    """Declare ``channels`` x 2 groups, run ``cycles`` service lives; delete it all after."""
    url = f"{node.url}?shards={SHARDS}&member_interval=0.5&member_timeout=2"
    run = uuid.uuid4().hex[:8]
    names = [f"soak-{run}-{i}" for i in range(channels)]
    command_channel = names[0]
    objects = rabbit_objects(node)
    admin = await connect_transport(url)
    readings = Readings()
    try:
        for name in names:
            for group in GROUPS:
                await admin.declare(name, group)
        await admin.declare(command_channel, "soak-responder")  # durable: counted before
        readings.handshakes.append(await handshake(node.url))
        before = await objects("")
        readings.objects = len(before)
        for cycle in range(cycles):
            await one_life(url, command_channel, cycle)
            readings.handshakes.append(await handshake(node.url))
            readings.memory.append(node_memory(node))
        after = await objects("")
        deadline = time.monotonic() + 15
        while after != before and time.monotonic() < deadline:
            await asyncio.sleep(0.5)  # exclusive member queues go just after their connection
            after = await objects("")
        assert after == before, f"left behind: {sorted(set(after) - set(before))}"
    finally:
        for name in names:
            await admin.tear_down(name, [*GROUPS, "soak-responder"])
        await admin.close()
    return readings


async def one_life(url: str, channel: str, cycle: int) -> None:
    """A responder and a requester start, one request is answered, both stop."""
    responder = Service("soak-responder", transport=url)

    @responder.handles(CreateTicket, channel=channel)
    async def create(cmd: CreateTicket, ctx: Context) -> None:
        await ctx.reply(TicketCreated(order_id=cmd.order_id, ticket_id=f"t-{cmd.order_id}"))

    requester = Service("soak-requester", transport=url)
    async with responder, requester:
        reply = await requester.request(
            CreateTicket(order_id=f"o-{cycle}"), timeout=30, destination=channel
        )
        assert reply == TicketCreated(order_id=f"o-{cycle}", ticket_id=f"t-o-{cycle}")


def check(readings: Readings) -> None:
    slowest = max(readings.handshakes)
    print(
        f"[soak] {readings.objects} queues and exchanges; handshakes: slowest {slowest:.3f}s; "
        f"node memory "
        f"{readings.memory[0] / 2**20:.0f} -> {readings.memory[-1] / 2**20:.0f} MiB"
    )
    assert slowest < 1.0, f"a handshake took {slowest:.2f}s"
    # Bounded: after the first life (which loads code and caches) memory may wander, but
    # not climb with every cycle as it did while each life left 17 queues behind.
    first, last = readings.memory[0], readings.memory[-1]
    assert last < first * 1.25 + 64 * 2**20, f"memory grew {first} -> {last} bytes"


async def test_a_small_topology_under_churn(private_rabbit: PrivateRabbit) -> None:
    check(await churn(private_rabbit, channels=20, cycles=5))


@pytest.mark.soak
async def test_300_channels_and_50_service_lives(private_rabbit: PrivateRabbit) -> None:
    check(
        await churn(private_rabbit, channels=int(os.environ.get("SOAK_CHANNELS", 300)), cycles=50)
    )
