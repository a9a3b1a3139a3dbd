"""Which offset of a partition is safe to commit, when acks arrive out of order.

Kafka remembers one number per group and partition: the next offset to read. Committing
offset ``n`` says "everything before ``n`` is processed", so a member may only commit up
to the first record that is still unsettled. :class:`OffsetTracker` keeps the records
handed out, in fetch order, and moves the watermark over the settled prefix::

    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(offset)
    tracker.done(12)          # -> None: 10 and 11 are still open
    tracker.done(10)          # -> 11: commit 11 (10 is done, 11 is not)
    tracker.done(11)          # -> 13: all three done

It does not assume offsets are dense (compaction and transaction markers leave gaps):
the watermark is the last settled offset in the prefix plus one.
"""

from __future__ import annotations

from collections import OrderedDict


class OffsetTracker:
    """The records of one partition handed out by one member, and the commit watermark."""

    __slots__ = ("_open", "committable")

    def __init__(self) -> None:
        # offset -> settled?, in the order records were fetched (ascending offsets).
        self._open: OrderedDict[int, bool] = OrderedDict()
        self.committable: int | None = None
        """The highest offset that may be committed (last settled prefix offset + 1)."""

    def started(self, offset: int) -> None:
        """A record at ``offset`` was handed out (again, after a nack, is fine)."""
        if offset not in self._open:
            self._open[offset] = False

    def done(self, offset: int) -> int | None:
        """``offset`` is settled; returns the new watermark if it moved, else ``None``."""
        if offset not in self._open:
            return None
        self._open[offset] = True
        moved = False
        while self._open:
            first, settled = next(iter(self._open.items()))
            if not settled:
                break
            self._open.popitem(last=False)
            self.committable = first + 1
            moved = True
        return self.committable if moved else None

    def forget_from(self, offset: int) -> None:
        """Drop ``offset`` and everything after it (they will be fetched again)."""
        for key in [k for k in self._open if k >= offset]:
            del self._open[key]

    @property
    def unsettled(self) -> int:
        return sum(1 for settled in self._open.values() if not settled)
