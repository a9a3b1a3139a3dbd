"""FTGO's create-order flow over ``kinesis://``: SQLite files + a private moto server
(Kinesis and DynamoDB emulated). Orders placed go PENDING -> VALIDATED (or REJECTED with
the reason) through Kinesis streams, and stopping the system deletes the instances'
reply streams."""

from __future__ import annotations

from pathlib import Path

from ftgo.app.system import FtgoSystem
from servicewire.testing.moto_server import PrivateMoto
from servicewire.transports.kinesis.client import Clients
from servicewire.transports.kinesis.options import parse_kinesis_url
from tests.ftgo.test_order_flow_embedded import one_order_validated_one_rejected


async def test_orders_are_validated_over_kinesis(tmp_path: Path) -> None:
    with PrivateMoto() as moto:
        url = moto.kinesis_url(
            poll_interval="0.1", lease_time="3", checkpoint_interval="0.5", shards="2"
        )
        system = FtgoSystem.embedded(tmp_path, transport=url)
        async with system:
            await one_order_validated_one_rejected(system, timeout=90)
        clients = await Clients.open(parse_kinesis_url(url))
        try:
            names = list((await clients.kinesis.list_streams()).get("StreamNames", []))
        finally:
            await clients.close()
        # <service>.replies.<instance> streams: each instance deleted its own when it
        # stopped (the shared reply channel stays).
        print(f"[ftgo over kinesis] streams after stop: {names}")
        assert names, "nothing was declared: the flow did not run over Kinesis"
        assert not [n for n in names if ".replies." in n], "an instance reply stream was left"
