"""Our transports run the contract suite shipped in :mod:`servicewire.testing.contract`.

The suite itself lives in the package (third-party transports run it too); this
package keeps the names our tests import. The memory transport's run is
``tests/contract/test_memory.py``; the brokers' runs sit next to the private brokers
they restart, in ``tests/transports/test_<broker>.py`` (``-k Contract``).
"""

from servicewire.testing.contract import RestartContract, TransportContract, TransportSpec

__all__ = ["RestartContract", "TransportContract", "TransportSpec"]
