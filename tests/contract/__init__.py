"""The transport contract suite: one set of tests every transport passes.

A transport's test module subclasses :class:`TransportContract` (and
:class:`RestartContract` when its broker can be restarted by the tests) and provides a
``spec`` fixture returning a :class:`TransportSpec`::

    class TestMemory(TransportContract):
        @pytest.fixture
        def spec(self) -> TransportSpec:
            name = f"memory://{uuid4().hex}"
            return TransportSpec(make=lambda: connect_transport(name))

Capabilities are checked both ways: a transport that declares per-key order must
keep it under competition; one that declares no history replay must not replay.
"""

from tests.contract.suite import RestartContract, TransportContract, TransportSpec

__all__ = ["RestartContract", "TransportContract", "TransportSpec"]
