"""The states an order goes through, as stored, sent over REST and gRPC, and shown.

An order is created PENDING and leaves it exactly once: VALIDATED when both the
consumer and the restaurant accept it, REJECTED (with a reason) when either refuses,
CANCELLED when the client cancels it first. The values are the strings on the wire and
in the database, so they compare equal to plain strings::

    order.state is OrderState.PENDING        # in code
    order.state == "PENDING"                 # also True: the value is the string
    OrderState("VALIDATED").is_final         # True
"""

from __future__ import annotations

from enum import StrEnum


class OrderState(StrEnum):
    """Where an order is in its life; PENDING is the only state it can leave."""

    PENDING = "PENDING"
    VALIDATED = "VALIDATED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"

    @property
    def is_final(self) -> bool:
        """Whether the order stays in this state for good."""
        return self is not OrderState.PENDING
