"""ActiveMQ over STOMP: the contract suite on the private broker, plus its faults.

The broker is the session's private ActiveMQ (``activemq`` in conftest.py: own data
directory, STOMP on a loopback port, nothing else), so the restart cases restart only
that one.
"""

from __future__ import annotations

import pytest

from servicewire.testing.activemq import PrivateActiveMQ
from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from tests.contract import RestartContract, TransportContract, TransportSpec


class TestStompContract(TransportContract, RestartContract):
    @pytest.fixture
    def spec(self, activemq: PrivateActiveMQ) -> TransportSpec:
        url = activemq.url("stomp")

        async def make() -> Transport:
            return await connect_transport(url)

        return TransportSpec(
            make=make, restart_broker=activemq.restart, settle_time=0.5, timeout=30.0
        )
