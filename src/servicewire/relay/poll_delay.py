"""How long a polling relay waits before it looks again: short while busy, long when idle.

Each empty look doubles the wait, up to a cap; a wake-up or rows found set it back to
the base interval at once::

    delay = PollDelay(base=0.25, cap=2.0)
    delay.current      # 0.25
    delay.grow()       # after an empty look: 0.5, then 1.0, 2.0, 2.0, ...
    delay.reset()      # after a wake-up or a batch with rows: 0.25 again

``cap == base`` keeps the wait fixed (how the relay polled before it backed off).
"""

from __future__ import annotations


class PollDelay:
    """The current pause between looks at the outbox, doubling while nothing is found."""

    def __init__(self, base: float, cap: float) -> None:
        if base < 0:
            raise ValueError(f"poll interval must not be negative, not {base}")
        self.base = base
        self.cap = max(base, cap)
        self.current = base

    def grow(self) -> None:
        """Nothing was there: wait twice as long next time (at most ``cap``)."""
        self.current = min(self.cap, max(self.current * 2, 0.001))

    def reset(self) -> None:
        """Something happened: look again after the base interval."""
        self.current = self.base
