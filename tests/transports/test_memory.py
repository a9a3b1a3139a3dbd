"""The in-memory transport passes the whole contract suite."""

from __future__ import annotations

import uuid

import pytest

from servicewire.transports import connect_transport
from servicewire.transports.base import Transport
from tests.contract import TransportContract, TransportSpec


class TestMemoryContract(TransportContract):
    @pytest.fixture
    def spec(self) -> TransportSpec:
        url = f"memory://{uuid.uuid4().hex}"

        async def make() -> Transport:
            return await connect_transport(url)

        return TransportSpec(make=make, settle_time=0.2)
