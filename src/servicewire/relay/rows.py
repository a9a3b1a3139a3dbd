"""Turning outbox rows into messages, and telling bad rows from a bad moment.

A row is *bad* when no retry can fix it: its headers are not a JSON object of strings,
its destination is a name no transport accepts, or the message exceeds the transport's
size limit. Relays move bad rows aside (``servicewire_outbox_dead``) with the reason, so
they never block the rows behind them. Anything else (broker down, timeout) is *transient*:
the relay settles what went out, keeps the rest and tries again, without ever letting a
later row of a partition key out before an earlier one::

    outcome = await publish_rows(transport, rows)   # .published, .bad, .failure
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from servicewire.errors import InvalidNameError, MessageTooLargeError
from servicewire.messaging import headers as h
from servicewire.messaging.channels import validate_name
from servicewire.messaging.message import Headers, Message
from servicewire.outbox.tables import outbox, outbox_dead
from servicewire.transports.base import Transport
from servicewire.transports.handled import confirm_handled

# Errors a publish raises for the message itself, not for the broker's state.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    InvalidNameError,
    MessageTooLargeError,
    ValueError,
    TypeError,
    UnicodeError,
)


_VALID_DESTINATIONS: set[str] = set()


@dataclass(slots=True)
class OutboxRow:
    """One outbox row as a relay sees it (from a query, the WAL or the binlog)."""

    id: int
    message_id: str
    destination: str
    headers: str
    payload: bytes
    partition_key: str | None
    shard: int
    created_at: float

    @classmethod
    def from_mapping(cls, values: Mapping[Any, Any]) -> OutboxRow:
        headers = values["headers"]
        payload = values["payload"]
        return cls(
            id=int(values["id"]),
            message_id=str(values["message_id"]),
            destination=str(values["destination"]),
            headers=headers.decode() if isinstance(headers, bytes) else str(headers),
            payload=bytes(payload) if payload is not None else b"",
            partition_key=values.get("partition_key"),
            shard=int(values["shard"]),
            created_at=float(values["created_at"]),
        )


class BadRowError(Exception):
    """The row can never be published; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def to_message(row: OutboxRow) -> Message:
    """The message a row stores; raises :class:`BadRowError` for corrupt rows."""
    try:
        data = json.loads(row.headers)
    except json.JSONDecodeError as exc:
        raise BadRowError(f"corrupt headers: not JSON ({exc.msg} at offset {exc.pos})") from None
    if not isinstance(data, dict):
        raise BadRowError(f"corrupt headers: a JSON {type(data).__name__}, not an object")
    for key, value in data.items():
        if not isinstance(value, str):
            raise BadRowError(f"corrupt headers: {key!r} is a {type(value).__name__}, not a string")
    if row.destination not in _VALID_DESTINATIONS:
        try:
            validate_name(row.destination, "channel")
        except InvalidNameError as exc:
            raise BadRowError(f"destination not accepted: {exc}") from None
        if len(_VALID_DESTINATIONS) < 10_000:  # a service has a few channels; stay bounded
            _VALID_DESTINATIONS.add(row.destination)
    data[h.DESTINATION] = row.destination
    return Message(row.message_id, Headers.adopt(data), row.payload)


@dataclass(slots=True)
class PublishOutcome:
    """What :func:`publish_rows` did with a batch.

    Rows in neither ``published`` nor ``bad`` were not (known to be) published: they wait
    for the next attempt, and ``failure`` says why it stopped.
    """

    published: list[OutboxRow] = field(default_factory=list)
    bad: list[tuple[OutboxRow, str]] = field(default_factory=list)
    failure: Exception | None = None
    """The transient error (broker down, no confirm) that stopped publishing, if any."""

    def raise_failure(self) -> None:
        """Raise ``failure`` (after the caller settled what did go out)."""
        if self.failure is not None:
            raise self.failure


async def publish_rows(
    transport: Transport,
    rows: Sequence[OutboxRow],
    *,
    guard: Callable[[], Awaitable[None]] | None = None,
) -> PublishOutcome:
    """Publish ``rows`` keeping each partition key's order; report what went out.

    ::

        outcome = await publish_rows(transport, rows)
        ...                          # delete outcome.published, move outcome.bad aside
        outcome.raise_failure()      # then back off if a transient error stopped it

    Rows go out in *waves*: the first row of every key, then the second of every key,
    and so on; a wave is one pipelined ``publish_batch``. A key's next row is sent only
    after its previous one is confirmed, so when a publish fails (the rest of its wave may
    still reach the broker) nothing later of that key has gone out before it, and the
    retry keeps every key's first-seen order. A transient failure ends the round: rows of
    the failed wave count as not published (the retry may publish some twice; delivery is
    at least once anyway).

    ``guard`` runs right before each wave (and each one-by-one publish) is handed to the
    transport; a relay passes its ownership check
    (:meth:`~servicewire.relay.fencing.Tenure.ensure`), so one that lost ownership
    mid-batch stops there, its error in ``failure``.
    """
    outcome = PublishOutcome()
    good = _checked(transport, rows, outcome.bad)
    # The caller deletes the rows that went out: a brokerless transport must confirm
    # only once a member handled them, not on receipt (see servicewire.transports.handled).
    with confirm_handled():
        for wave in _waves(good):
            try:
                await _publish_wave(transport, wave, outcome, guard)
            except Exception as exc:  # a bad moment, not a bad row: the caller retries
                outcome.failure = exc
                break
    return outcome


def _checked(
    transport: Transport, rows: Sequence[OutboxRow], bad: list[tuple[OutboxRow, str]]
) -> list[tuple[OutboxRow, Message]]:
    """The rows' messages; rows that can never be published go to ``bad``."""
    good: list[tuple[OutboxRow, Message]] = []
    for row in rows:
        try:
            message = to_message(row)
            # The JSON text bounds the headers' size from above: the exact (slower)
            # check only for rows near the limit.
            if len(row.payload) + len(row.headers) > transport.max_message_size:
                transport.check_size(message)
        except BadRowError as exc:
            bad.append((row, exc.reason))
            continue
        except MessageTooLargeError as exc:
            bad.append((row, str(exc)))
            continue
        good.append((row, message))
    return good


def _waves(
    good: Sequence[tuple[OutboxRow, Message]],
) -> list[list[tuple[OutboxRow, Message]]]:
    """Wave ``i`` holds the ``i``-th row of every partition key (rows in id order).

    A row without a key has no order to keep and goes out in the first wave.
    """
    depth: dict[str, int] = {}
    waves: list[list[tuple[OutboxRow, Message]]] = []
    for row, message in good:
        level = 0
        if row.partition_key is not None:
            level = depth.get(row.partition_key, 0)
            depth[row.partition_key] = level + 1
        if level == len(waves):
            waves.append([])
        waves[level].append((row, message))
    return waves


async def _publish_wave(
    transport: Transport,
    wave: Sequence[tuple[OutboxRow, Message]],
    outcome: PublishOutcome,
    guard: Callable[[], Awaitable[None]] | None,
) -> None:
    """Publish one wave; transient errors raise (after recording what went out)."""
    if guard is not None:
        await guard()
    try:
        await transport.publish_batch([m for _, m in wave])
    except PERMANENT_ERRORS:
        pass
    else:
        outcome.published.extend(row for row, _ in wave)
        return
    # Some message was refused for what it is: find it by publishing one at a time
    # (the ones before it go out twice; delivery is at least once anyway).
    for row, message in wave:
        if guard is not None:
            await guard()
        try:
            await transport.publish(message)
        except PERMANENT_ERRORS as exc:
            outcome.bad.append((row, f"refused by the {transport.scheme} transport: {exc}"))
            continue
        outcome.published.append(row)


async def move_aside(
    conn: AsyncConnection, bad: Sequence[tuple[OutboxRow, str]], relay: str
) -> None:
    """Copy bad rows to ``servicewire_outbox_dead`` with their reason; delete them."""
    if not bad:
        return
    now = time.time()
    ids = [row.id for row, _ in bad]
    # A log-tailing relay may replay a transaction it already handled (crash before its
    # position was confirmed): replace, never fail on, an earlier copy.
    await conn.execute(delete(outbox_dead).where(outbox_dead.c.id.in_(ids)))
    await conn.execute(
        insert(outbox_dead),
        [
            {
                "id": row.id,
                "message_id": row.message_id[:64],
                "destination": row.destination[:200],
                "headers": row.headers,
                "payload": row.payload,
                "partition_key": row.partition_key,
                "shard": row.shard,
                "created_at": row.created_at,
                "reason": reason,
                "relay": relay,
                "moved_at": now,
            }
            for row, reason in bad
        ],
    )
    await conn.execute(delete(outbox).where(outbox.c.id.in_(ids)))
