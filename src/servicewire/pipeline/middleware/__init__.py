"""Middleware around the pipeline's transactional unit, one concern per module.

:mod:`~.base` defines the shape (:data:`Middleware`, :data:`Step`, :class:`Run`,
:func:`chain`); :mod:`~.logging`, :mod:`~.tracing` and :mod:`~.metrics` are the
telemetry concerns the :class:`~servicewire.service.Service` applies, in that order
(outermost first)::

    from servicewire.pipeline.middleware import chain
    from servicewire.pipeline.middleware.logging import log_context
    from servicewire.pipeline.middleware.metrics import handler_timing
    from servicewire.pipeline.middleware.tracing import handler_tracing

    step = chain([log_context, handler_tracing, handler_timing], transactional_unit)

This package imports no telemetry itself, so the pipeline can use its types without
pulling telemetry in; only the concern modules do.
"""

from servicewire.pipeline.middleware.base import Middleware, Run, Step, chain

__all__ = ["Middleware", "Run", "Step", "chain"]
