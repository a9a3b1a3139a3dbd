"""Fixtures shared by the broker tests in this folder."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.activemq import PrivateActiveMQ, require_activemq


@pytest.fixture(scope="session")
def activemq() -> Iterator[PrivateActiveMQ]:
    """One private ActiveMQ (STOMP connector only) for the whole run: a JVM takes seconds
    to start. Its process belongs to no event loop, so every test's own loop can use it,
    restart it (the restart cases) and find it running again afterwards."""
    require_activemq()
    broker = PrivateActiveMQ(connectors=("stomp",))
    asyncio.run(broker.start())
    try:
        yield broker
    finally:
        asyncio.run(broker.close())
