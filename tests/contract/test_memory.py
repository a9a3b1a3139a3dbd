"""The in-memory transport passes the whole contract suite (the three-line form)."""

import uuid

from servicewire.testing.contract import TransportContract, TransportSpec


class TestMemoryContract(TransportContract):
    spec = TransportSpec.fixture(f"memory://contract-{uuid.uuid4().hex}", settle_time=0.2)
