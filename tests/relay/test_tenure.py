"""Tenure: trusted for half the lease after a proof, proven again when stale, lost for good."""

from __future__ import annotations

import asyncio
import time

import pytest

from servicewire.relay.fencing import OwnershipLostError, Tenure


async def test_a_fresh_proof_is_trusted_and_a_stale_one_is_proven_again() -> None:
    tenure = Tenure(lease=0.2)
    asked: list[float] = []

    async def renew() -> None:
        asked.append(time.monotonic())

    tenure.proven(time.monotonic())
    await tenure.ensure(renew)
    assert asked == []  # fresh: no round trip
    await asyncio.sleep(0.12)  # longer than lease / 2: the proof went stale
    assert not tenure.held
    await tenure.ensure(renew)
    assert len(asked) == 1 and tenure.held


async def test_a_failed_proof_loses_ownership_for_good() -> None:
    tenure = Tenure(lease=0.2, what="the shard locks")

    async def session_ended() -> None:
        raise ConnectionError("terminating connection due to idle-in-transaction timeout")

    with pytest.raises(OwnershipLostError, match="the shard locks lost: ConnectionError"):
        await tenure.ensure(session_ended)
    assert tenure.lost is not None
    tenure.proven(time.monotonic())  # a late reply proves nothing any more
    with pytest.raises(OwnershipLostError):
        tenure.check()


async def test_kept_renews_in_the_background_while_the_body_runs() -> None:
    tenure = Tenure(lease=0.2)
    renewals = 0

    async def renew() -> None:
        nonlocal renewals
        renewals += 1

    tenure.proven(time.monotonic())
    async with tenure.kept(renew):
        await asyncio.sleep(0.35)  # longer than the proof is trusted
        tenure.check()  # still trusted: renewed every lease / 4
    assert renewals >= 3
