"""What became of one delivery: the pipeline's answer for each message it settles."""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    """What became of one delivery."""

    HANDLED = "handled"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    RETRYING = "retrying"
    DEAD_LETTERED = "dead-lettered"
    DROPPED = "dropped"
    """Could not even be dead-lettered (a dead letter no transport setting accepts)."""
