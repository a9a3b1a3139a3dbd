"""Relay scenarios shared by the SQL relays (``test_guarantees``) and the DynamoDB
Streams relay (``test_dynamodb_streams``): each takes an environment with
``started(transport)`` and ``write(messages, per_tx=...)``::

    async with relay_env(case, tmp_path) as env:
        await broker_down_then_drains_in_key_order(env)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from servicewire.messaging.message import Message
from servicewire.relay import Relay
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from tests.relay.flaky import FailOnceTransport, FlakyTransport
from tests.relay.helpers import Collector, eventually, make_messages, unique


class Env(Protocol):
    async def started(self, transport: Transport, **options: Any) -> Relay: ...

    async def write(self, messages: Sequence[Message], per_tx: int = 1) -> None: ...


async def broker_down_then_drains_in_key_order(
    env: Env, while_down: Callable[[Relay], Awaitable[None]] | None = None
) -> None:
    """200 messages (5 keys) written while the broker refuses; then it comes back."""
    inner = await connect_transport(f"memory://{unique('b')}")
    transport = FlakyTransport(inner)
    channel = unique("down")
    collector = await Collector.open(inner, channel)
    relay = await env.started(transport)
    transport.down = True
    messages = make_messages(channel, 200, keys=5)
    await env.write(messages, per_tx=20)
    await eventually(lambda: transport.refused > 0, 10, "a refused publish")
    if while_down is not None:
        await while_down(relay)
    assert not collector.counts
    transport.down = False
    relay.wake()
    await eventually(lambda: len(collector.unique_ids) == 200, 30, "the backlog to drain")
    assert collector.seqs_by_key() == {f"k{k}": list(range(k, 200, 5)) for k in range(5)}
    await collector.close()


async def partial_failure_keeps_key_order(env: Env) -> None:
    """Message 3 of key order-42 fails once while the rest of its batch goes out."""
    inner = await connect_transport(f"memory://{unique('b')}")
    channel = unique("partial")
    order_42 = [
        Message.create(
            f'{{"n": {n}}}'.encode(),
            destination=channel,
            kind="event",
            type="test.Relayed",
            partition_key="order-42",
            extra={"seq": str(n)},
        )
        for n in range(10)
    ]
    others = make_messages(channel, 10, keys=2, start=100)
    transport = FailOnceTransport(inner, {order_42[3].id})
    collector = await Collector.open(inner, channel)
    await env.started(transport)
    await env.write([*order_42, *others], per_tx=20)  # one transaction, one batch
    everything = {m.id for m in [*order_42, *others]}
    await eventually(lambda: collector.unique_ids == everything, 20, "all 20 messages")
    assert transport.failed == [order_42[3].id]
    seqs = collector.seqs_by_key()
    assert seqs["order-42"] == list(range(10))
    assert seqs["k0"] == list(range(100, 110, 2))
    assert seqs["k1"] == list(range(101, 110, 2))
    await collector.close()
