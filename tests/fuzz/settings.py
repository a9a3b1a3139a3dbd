"""How hard to fuzz, and on which stores.

``SERVICEWIRE_FUZZ_EXAMPLES``: inputs per surface. ``make test`` uses the default
(150 per surface); ``make fuzz`` sets 10000.

``SERVICEWIRE_FUZZ_STORES``: the databases FTGO and the pipeline run on under fuzz,
comma-separated among ``sqlite``, ``postgres``, ``mariadb``. ``make test`` uses the
default, PostgreSQL (the store that refuses the most: NUL in text, for one);
``make fuzz`` sets ``postgres,mariadb``.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

EXAMPLES = int(os.environ.get("SERVICEWIRE_FUZZ_EXAMPLES", "150"))
STORES = [s for s in os.environ.get("SERVICEWIRE_FUZZ_STORES", "postgres").split(",") if s]

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
