"""The tracing middleware's tests record spans with the same fixture as tests/telemetry."""

from tests.telemetry.conftest import spans

__all__ = ["spans"]
