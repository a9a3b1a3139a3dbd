"""Which local services the tests need, and what to do when one is missing.

A test that needs PostgreSQL calls ``require("postgres")`` (or uses a fixture that does).
When the service does not answer on its port the test is skipped, unless
``SERVICEWIRE_REQUIRE_SERVICES=1`` (set by ``.ci/run``): then it fails, because a
skipped integration test in CI hides a missing service.
"""

from __future__ import annotations

import os
import socket

import pytest

PORTS: dict[str, tuple[str, int]] = {
    "postgres": ("127.0.0.1", 5432),
    "mariadb": ("127.0.0.1", 3306),
    "redis": ("127.0.0.1", 6379),
    "rabbitmq": ("127.0.0.1", 5672),
    "mosquitto": ("127.0.0.1", 1883),
    "nats": ("127.0.0.1", 4222),
}

URLS: dict[str, str] = {
    "postgres": os.environ.get(
        "SERVICEWIRE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
    ),
    "mariadb": os.environ.get("SERVICEWIRE_TEST_MARIADB", "mysql://root@127.0.0.1:3306/test"),
    "redis": os.environ.get("SERVICEWIRE_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    "rabbitmq": os.environ.get("SERVICEWIRE_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/"),
    "nats": os.environ.get("SERVICEWIRE_TEST_NATS", "nats://127.0.0.1:4222"),
}


def services_required() -> bool:
    return os.environ.get("SERVICEWIRE_REQUIRE_SERVICES", "") not in ("", "0", "false")


def is_up(name: str, timeout: float = 1.0) -> bool:
    host, port = PORTS[name]
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require(name: str) -> None:
    """Skip (or, in CI, fail) the calling test when service ``name`` is not reachable."""
    if is_up(name):
        return
    host, port = PORTS[name]
    message = f"service {name} is not reachable on {host}:{port}"
    if services_required():
        pytest.fail(message + " (SERVICEWIRE_REQUIRE_SERVICES=1)")
    pytest.skip(message)
