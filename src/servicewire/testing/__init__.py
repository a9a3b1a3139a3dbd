"""Test helpers: unit-test a service's handlers with no broker and no server.

    from servicewire.testing import ServiceHarness

See :mod:`servicewire.testing.harness`.
"""

from servicewire.testing.harness import HarnessDelivery, ServiceHarness

__all__ = ["HarnessDelivery", "ServiceHarness"]
