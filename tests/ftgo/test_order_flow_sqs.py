"""FTGO's create-order flow over ``sqs://``: SQLite files + a private moto server (an SQS
emulator). Orders placed go PENDING -> VALIDATED (or REJECTED with the reason) through
SQS queues, and stopping the system deletes the instances' reply queues."""

from __future__ import annotations

from pathlib import Path

from ftgo.app.system import FtgoSystem
from servicewire.testing.moto_server import PrivateMoto
from servicewire.transports.sqs.client import open_client
from servicewire.transports.sqs.options import parse_sqs_url
from tests.ftgo.test_order_flow_embedded import one_order_validated_one_rejected


async def test_orders_are_validated_over_sqs(tmp_path: Path) -> None:
    with PrivateMoto() as moto:
        url = moto.sqs_url(wait_time="1", visibility_timeout="10")
        system = FtgoSystem.embedded(tmp_path, transport=url)
        async with system:
            await one_order_validated_one_rejected(system, timeout=90)
        client, context = await open_client(parse_sqs_url(url))
        try:
            names = [u.rsplit("/", 1)[1] for u in (await client.list_queues()).get("QueueUrls", [])]
        finally:
            await context.__aexit__(None, None, None)
        # <service>.replies.<instance> queues are named <service>_replies_<instance>-...:
        # each instance deleted its own when it stopped (the shared reply channel stays).
        print(f"[ftgo over sqs] queues after stop: {names}")
        assert names, "nothing was declared: the flow did not run over SQS"
        assert not [n for n in names if "_replies_" in n], "an instance reply queue was left"
