"""Bounded retries: a few immediate re-runs, then delayed redeliveries, then dead letter.

policy = RetryPolicy(immediate=2, delayed=3, backoff=0.5, factor=2.0)
policy.redelivery_delay(1)     # ~0.5 s (with jitter), then ~1 s, ~2 s
policy.horizon()               # upper bound of time a message can spend retrying
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failing handler is retried before its message is dead-lettered."""

    immediate: int = 2
    """Re-runs within the same delivery, right away (transient conflicts, deadlocks)."""
    delayed: int = 3
    """Redeliveries through the transport with backoff (the broker holds the message)."""
    backoff: float = 0.5
    """Delay before the first redelivery, seconds."""
    factor: float = 2.0
    """Each further redelivery waits ``factor`` times longer."""
    max_backoff: float = 60.0
    jitter: float = 0.2
    """Fraction of random spread, so retries of many messages do not align."""

    def redelivery_delay(self, attempt: int) -> float:
        """Delay before redelivery after delivery number ``attempt`` (1-based) failed."""
        base = min(self.max_backoff, self.backoff * self.factor ** max(0, attempt - 1))
        spread = base * self.jitter
        return max(0.0, base + random.uniform(-spread, spread))

    def should_redeliver(self, attempt: int) -> bool:
        """Whether delivery number ``attempt`` may be redelivered rather than dead-lettered."""
        return attempt <= self.delayed

    def horizon(self) -> timedelta:
        """The longest a message can keep being retried (the inbox must outlive it)."""
        total = sum(
            min(self.max_backoff, self.backoff * self.factor ** (n - 1)) * (1 + self.jitter)
            for n in range(1, self.delayed + 1)
        )
        return timedelta(seconds=total)


NO_RETRY = RetryPolicy(immediate=0, delayed=0)
"""Dead-letter on the first failure (useful in tests)."""
