"""Services: handlers on a service object, and the interaction styles between services.

    from servicewire.service import Service

:mod:`~.service` (the :class:`Service`: handlers, request/reply, publish/subscribe,
scatter-gather, its relay and its lifecycle), :mod:`~.requests` (matching replies to
waiting callers by correlation id).
"""

from servicewire.service.service import Service

__all__ = ["Service"]
