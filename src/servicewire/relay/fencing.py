"""Fencing: a relay that may have lost ownership publishes nothing more.

A relay owns what it publishes through something the *database* ends when the relay
goes quiet: the session holding shard row locks (PostgreSQL's
``idle_in_transaction_session_timeout``, MariaDB's ``idle_transaction_timeout``), the
session holding ``GET_LOCK`` (``wait_timeout``), or a lease row that expires. A relay
paused by ``SIGSTOP``, a long GC pause or a network partition does not notice: when it
runs again, its coroutines carry on where they stopped, in the middle of a batch.

A :class:`Tenure` is what the relay knows locally: ownership was proven by a round
trip *sent* at time ``t`` (monotonic), and the database cannot end it before
``t + lease``. The relay trusts it only until ``t + lease / 2``; while a batch is being
published a background task proves it again every ``lease / 4``, and before every wave
the relay makes sure the proof is fresh, proving it once more on the spot when it is
not (a loaded machine may delay the background task). The monotonic clock keeps
running while a process is stopped, so a relay resumed after a long pause finds its
proof stale and has to prove ownership again, which fails once the database ended its
session or another relay took the lease::

    tenure = Tenure(lease=5.0)
    tenure.proven(asked_at)                    # after a statement on the owning session
    async with tenure.kept(renew):             # renew() proves it again (a round trip)
        await publish_rows(transport, rows, guard=lambda: tenure.ensure(renew))

What remains is the gap between the last check and the broker accepting a wave: a
wave checked just before a pause is sent after it. See docs/relays.md ("Fencing").
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from servicewire.timeouts import within

TRUSTED_FRACTION = 0.5
"""How much of the lease a proof is trusted for (the rest absorbs scheduling delays)."""

RENEW_FRACTION = 0.25
"""How often, as a fraction of the lease, a busy owner proves ownership again."""


class OwnershipLostError(Exception):
    """This relay no longer (provably) owns what it was publishing; it publishes nothing more."""


class Tenure:
    """How long a relay may go on publishing on the strength of its last proof of ownership."""

    def __init__(self, lease: float, what: str = "ownership") -> None:
        self.lease = lease
        self.what = what
        self._trusted_until = 0.0
        self._lost: str | None = None
        # One proof at a time: the owning session runs one statement at a time.
        self._proving = asyncio.Lock()

    @property
    def renew_every(self) -> float:
        return self.lease * RENEW_FRACTION

    def proven(self, asked_at: float) -> None:
        """Ownership was confirmed by a statement sent at ``asked_at`` (``time.monotonic()``).

        The send time, not the reply time: the database's idle clock started no earlier.
        """
        if self._lost is None:
            self._trusted_until = max(self._trusted_until, asked_at + self.lease * TRUSTED_FRACTION)

    def lose(self, reason: str) -> None:
        """Ownership is gone (the owning session failed, the lease was taken)."""
        self._lost = reason
        self._trusted_until = 0.0

    @property
    def held(self) -> bool:
        return self._lost is None and time.monotonic() < self._trusted_until

    @property
    def lost(self) -> str | None:
        """Why ownership is known to be gone (None: not known to be)."""
        return self._lost

    def due(self) -> bool:
        """True when the owner should prove ownership again (it is idle or between batches)."""
        return time.monotonic() > self._trusted_until - self.lease * (
            TRUSTED_FRACTION - RENEW_FRACTION
        )

    def check(self) -> None:
        """Raise :class:`OwnershipLostError` unless ownership is (still) trusted."""
        if self._lost is not None:
            raise OwnershipLostError(f"{self.what} lost: {self._lost}")
        late = time.monotonic() - self._trusted_until
        if late >= 0:
            raise OwnershipLostError(
                f"{self.what} not proven for {late + self.lease * TRUSTED_FRACTION:.1f}s "
                f"(lease {self.lease:g}s): the database may have handed it to another relay"
            )

    async def ensure(self, renew: Callable[[], Awaitable[None]]) -> None:
        """Return at once if ownership is trusted; otherwise prove it now, or raise
        :class:`OwnershipLostError`. What a relay runs right before each wave."""
        if self.held:
            return
        if self._lost is not None:
            self.check()
        await self._prove(renew)
        self.check()

    async def _prove(self, renew: Callable[[], Awaitable[None]]) -> None:
        async with self._proving:
            if self._lost is not None:
                self.check()
            asked_at = time.monotonic()
            try:
                await renew()
            except Exception as exc:
                self.lose(f"{type(exc).__name__}: {exc}")
                raise OwnershipLostError(f"{self.what} lost: {self._lost}") from exc
            self.proven(asked_at)

    @contextlib.asynccontextmanager
    async def kept(self, renew: Callable[[], Awaitable[None]]) -> AsyncIterator[None]:
        """Prove ownership every :attr:`renew_every` seconds while the body runs.

        ``renew`` runs one statement on the owning session (or renews the lease) and
        raises if ownership is gone; that marks the tenure lost, so the next
        :meth:`check` fails.
        """
        done = asyncio.Event()
        task = asyncio.create_task(self._keep(renew, done))
        try:
            yield
        finally:
            # Never cancel a renewal mid-statement (that would break the owning
            # session the caller goes on to use): let it finish, then stop.
            done.set()
            await task

    async def _keep(self, renew: Callable[[], Awaitable[None]], done: asyncio.Event) -> None:
        while self._lost is None:
            with contextlib.suppress(TimeoutError):
                await within(done.wait(), self.renew_every)
            if done.is_set():
                return
            try:
                await self._prove(renew)
            except OwnershipLostError:
                return  # recorded: the next ensure() or check() raises
