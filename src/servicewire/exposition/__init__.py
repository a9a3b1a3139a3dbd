"""Exposition: what the telemetry recorded, served to the tools that read it.

``GET /metrics`` for Prometheus, served by prometheus_client (:mod:`~.metrics`), with
the gauges read from databases at scrape time as a custom collector
(:mod:`~.collector`). The web console (:mod:`servicewire.console`) and
``servicewire trace`` read the message journal::

    from servicewire.exposition import mount_metrics, serve_metrics

    mount_metrics(app, service)                       # GET /metrics on a REST app
    server = await serve_metrics(9464, engines=[engine])   # a server of its own
    await server.close()
"""

from servicewire.exposition.collector import DatabaseCollector
from servicewire.exposition.metrics import (
    MetricsEndpoint,
    MetricsServer,
    exposition,
    metrics_registry,
    mount_metrics,
    serve_metrics,
)

__all__ = [
    "DatabaseCollector",
    "MetricsEndpoint",
    "MetricsServer",
    "exposition",
    "metrics_registry",
    "mount_metrics",
    "serve_metrics",
]
