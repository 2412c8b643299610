"""Which offset of a partition may be committed while records finish out of order."""

from __future__ import annotations

import heapq


class PartitionProgress:
    """Offsets handed out and finished for one partition.

    Records of different keys finish in any order; the committable offset is the first one
    still in flight (or one past the last fetched when none is), so a commit never skips a
    record that has not been handled.
    """

    def __init__(self) -> None:
        self._in_flight: list[int] = []
        self._done: set[int] = set()
        self._next = -1

    def started(self, offset: int) -> None:
        heapq.heappush(self._in_flight, offset)
        self._next = max(self._next, offset + 1)

    def finished(self, offset: int) -> None:
        self._done.add(offset)
        while self._in_flight and self._in_flight[0] in self._done:
            self._done.discard(heapq.heappop(self._in_flight))

    @property
    def busy(self) -> int:
        return len(self._in_flight)

    def committable(self) -> int | None:
        """The offset to commit (the next record to read after a restart), or None."""
        if self._next < 0:
            return None
        return self._in_flight[0] if self._in_flight else self._next
