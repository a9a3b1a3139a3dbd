"""The transport contract suite, shipped as a pytest plugin: one set of tests every
transport passes, ours and third parties' alike.

A transport registered with :func:`servicewire.transports.register_scheme` runs it by
subclassing :class:`TransportContract` in a test module and saying how to reach it::

    from servicewire.testing.contract import TransportContract, TransportSpec

    class TestPigeonContract(TransportContract):
        spec = TransportSpec.fixture("pigeon://127.0.0.1:7000")

``TransportSpec.fixture`` is the short form of a ``spec`` fixture; write the fixture
yourself when clients need more than a URL (a private broker, a restart hook)::

    @pytest.fixture
    def spec(self, my_broker) -> TransportSpec:
        return TransportSpec.for_url(my_broker.url, settle_time=0.2, restart_broker=...)

Add :class:`RestartContract` as a second base class when the tests may restart the
broker (``restart_broker``). :class:`AttemptContract` (part of ``TransportContract``)
holds the attempt-counting cases alone, for a second configuration of a transport
(``tests/transports/test_amqp.py`` runs them on classic queues). Each case reads the
transport's declared :class:`~servicewire.transports.base.Capabilities` and checks them
both ways: a transport that declares per-key order must keep it under competition; one
that declares no history replay must not replay. The limits of
:meth:`Transport.publish` (size, 64 KiB of headers) are checked for every transport too.

Needs pytest and pytest-asyncio (``asyncio_mode = "auto"``); this module imports pytest
itself, so ``import servicewire.testing`` never does. :mod:`.helpers` has the building
blocks the cases use (``Member``, ``eventually``, ``make_message``, ``unique``) for a
transport's own extra tests.
"""

from servicewire.testing.contract.attempts import AttemptContract
from servicewire.testing.contract.suite import RestartContract, TransportContract, TransportSpec

__all__ = ["AttemptContract", "RestartContract", "TransportContract", "TransportSpec"]
