"""Services: handlers on a service object, and the interaction styles between services.

    from servicewire.service import Service, ServiceOptions, Signatures

:mod:`~.service` (the :class:`Service`: handlers, units of work, lifecycle),
:mod:`~.options` (:class:`ServiceOptions`, how it behaves), and what it
is built from: :mod:`~.resources` (its database, temporary SQLite file, transport and
relay from URLs), :mod:`~.consumers` (a task per subscription, inbox upkeep),
:mod:`~.outbox_writing` (signed, traced writes to the outbox), :mod:`~.request_reply`
(request/reply and scatter-gather over the instance's reply channel), :mod:`~.requests`
(matching replies to waiting callers by correlation id) and :mod:`~.description` (the
channels it receives and sends on, for AsyncAPI).
"""

from servicewire.service.options import ServiceOptions, Signatures
from servicewire.service.service import Service

__all__ = ["Service", "ServiceOptions", "Signatures"]
