"""Amazon Kinesis Data Streams: the contract suite and fault tests on a private moto server.

moto emulates the Kinesis and DynamoDB APIs in memory (docs/transports/kinesis.md says
what was checked on it and what against AWS's documentation instead). Each module run
starts one ``moto_server`` on a free loopback port and stops it; every case deletes the
streams and tables it made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from servicewire.testing.moto_server import PrivateMoto
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from servicewire.transports.kinesis.transport import KinesisTransport
from tests.contract import TransportContract, TransportSpec

FAST = {
    "poll_interval": "0.1",
    "lease_time": "3",
    "checkpoint_interval": "0.5",
    "shard_refresh": "1",
}


@pytest.fixture(scope="module")
def moto() -> Iterator[PrivateMoto]:
    with PrivateMoto() as server:
        yield server


class TestKinesisContract(TransportContract):
    @pytest.fixture
    def spec(self, moto: PrivateMoto) -> TransportSpec:
        return TransportSpec.for_url(
            moto.kinesis_url(**FAST), settle_time=1.0, timeout=60.0, volume=0.2
        )

    async def test_declares_history_and_the_emulator_no_persistence(
        self, transport: Transport
    ) -> None:
        assert transport.capabilities.replays_history is True
        assert transport.capabilities.persistent is False  # persistent=no: moto is in memory
        assert KinesisTransport.capabilities.persistent is True


@pytest.fixture
async def kinesis(moto: PrivateMoto) -> AsyncIterator[KinesisTransport]:
    transport = await connect_transport(moto.kinesis_url(**FAST))
    assert isinstance(transport, KinesisTransport)
    try:
        yield transport
    finally:
        await transport.close()
