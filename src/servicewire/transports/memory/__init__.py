"""The in-memory transport (``memory://``): brokers and groups inside one process.

    from servicewire.transports.memory import MemoryBroker, MemoryTransport

It passes the same contract suite as the real brokers, so tests and the embedded demo
exercise the same semantics (groups, shards, redelivery, dead letters).
"""

from servicewire.transports.memory.transport import MemoryBroker, MemoryTransport

__all__ = ["MemoryBroker", "MemoryTransport"]
