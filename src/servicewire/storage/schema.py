"""The SQLAlchemy metadata every Servicewire table belongs to.

The outbox (:mod:`servicewire.outbox.tables`), the inbox (:mod:`servicewire.pipeline.inbox`),
relay leases and checkpoints, and the message journal all register on :data:`metadata`,
so one ``metadata.create_all`` (or ``servicewire db init URL``, or an Alembic migration
that targets it) creates them together beside the application's own tables::

    from servicewire.storage.schema import all_tables_metadata
    async with engine.begin() as conn:
        await conn.run_sync(all_tables_metadata().create_all)
"""

from __future__ import annotations

import importlib

from sqlalchemy import MetaData

metadata = MetaData()

# Modules that define tables on `metadata`; importing them registers their tables.
_TABLE_MODULES = [
    "servicewire.outbox.tables",
    "servicewire.pipeline.inbox",
    "servicewire.telemetry.journal",
]


def all_tables_metadata() -> MetaData:
    """:data:`metadata` with every Servicewire table module imported (those that exist)."""
    for name in _TABLE_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    return metadata
