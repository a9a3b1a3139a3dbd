"""Exposition: what the telemetry recorded, served to the tools that read it.

``GET /metrics`` for Prometheus (:mod:`~.metrics`). The web console
(:mod:`servicewire.console`) and ``servicewire trace`` read the message journal::

    from servicewire.exposition import mount_metrics

    mount_metrics(app, service)          # GET /metrics, gauges refreshed per scrape
"""

from servicewire.exposition.metrics import (
    MetricsEndpoint,
    exposition,
    mount_metrics,
    refresh_database,
    refresh_service,
    serve_metrics,
)

__all__ = [
    "MetricsEndpoint",
    "exposition",
    "mount_metrics",
    "refresh_database",
    "refresh_service",
    "serve_metrics",
]
