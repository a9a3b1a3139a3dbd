"""How hard to fuzz: ``SERVICEWIRE_FUZZ_EXAMPLES`` inputs per surface (nightly: 10000).

``make test`` uses the default (150 per surface); the nightly run sets 10000.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("SERVICEWIRE_FUZZ_EXAMPLES", "150"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # hangs are caught by per-call timeouts, not by hypothesis' timer
    suppress_health_check=list(HealthCheck),
    derandomize=False,
    database=None,
)


def per_operation(operations: int) -> int:
    """Examples per operation so that a whole API gets about EXAMPLES inputs."""
    return max(3, -(-EXAMPLES // max(operations, 1)))
