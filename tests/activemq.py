"""The private ActiveMQ of the tests (:mod:`servicewire.testing.activemq`).

async with PrivateActiveMQ(connectors=("stomp",)) as broker:
    url = broker.url("stomp")                 # "stomp://127.0.0.1:40123"
"""

from __future__ import annotations

import shutil

import pytest

from servicewire.testing.activemq import PrivateActiveMQ, activemq_home, available_connectors
from tests.services import services_required

__all__ = ["PrivateActiveMQ", "available_connectors", "require_activemq"]


def require_activemq() -> None:
    """Skip (or in CI fail) when java or the ActiveMQ package is missing."""
    launcher = activemq_home() / "bin" / "activemq.jar"
    if shutil.which("java") is not None and launcher.is_file():
        return
    message = f"ActiveMQ is not installed (java and {launcher}): scripts/services/70-activemq.sh"
    if services_required():
        pytest.fail(message + " (SERVICEWIRE_REQUIRE_SERVICES=1)")
    pytest.skip(message)
