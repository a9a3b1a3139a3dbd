"""Every relay mode publishing to the shared RabbitMQ through the ``amqp://`` transport."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from servicewire.transports import connect_transport
from tests.relay.cases import CASES, Case, relay_env
from tests.relay.helpers import Collector, eventually, make_messages, unique
from tests.services import URLS, require


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_relay_to_rabbitmq_keeps_key_order(case: Case, tmp_path: Path) -> None:
    require("rabbitmq")
    transport = await connect_transport(URLS["rabbitmq"])
    channel = unique("relay.amqp")
    try:
        async with relay_env(case, tmp_path) as env:
            collector = await Collector.open(transport, channel, "relay-test")
            try:
                await env.started(transport)
                messages = make_messages(channel, 300, keys=6)
                await env.write(messages, per_tx=15)
                await eventually(lambda: len(collector.unique_ids) == 300, 60, "all 300")
                assert collector.seqs_by_key() == {
                    f"k{k}": list(range(k, 300, 6)) for k in range(6)
                }
            finally:
                await collector.close()
    finally:
        with contextlib.suppress(Exception):
            await transport.tear_down(channel, ["relay-test"])
        await transport.close()
