from __future__ import annotations

import pytest

from servicewire.transports.memory import MemoryBroker


@pytest.fixture(autouse=True)
def _fresh_memory_brokers() -> None:
    """Each test starts with no in-memory brokers left by another."""
    MemoryBroker.reset()
