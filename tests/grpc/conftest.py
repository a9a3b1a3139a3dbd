"""Fixtures shared with tests/telemetry: ``spans``, an SDK provider recording in memory."""

from tests.telemetry.conftest import spans

__all__ = ["spans"]
