"""Which offset of a partition may be committed while records finish out of order.

A long handler (an agent session runs for seconds to hours) must not hold back the commit point
of its whole partition: if it did, a crash would redeliver every later record of the partition,
however long ago it was handled. So a commit names the next record to read AND the records
below it still in flight (in the commit's metadata string, ``encode_pending``); the next owner
reads from the oldest of those and hands only those to its handler again, skipping the ones
already handled (``PartitionProgress.resumed``). Kafka keeps the metadata with the offset.
"""

from __future__ import annotations

import heapq

# Kafka refuses a commit whose metadata passes offset.metadata.max.bytes (4096 by default).
METADATA_LIMIT = 3_000
_PREFIX = "keel.pending="


def encode_pending(offsets: list[int]) -> str:
    return _PREFIX + ",".join(str(o) for o in offsets) if offsets else ""


def decode_pending(metadata: str | None) -> list[int]:
    """The in-flight offsets a commit listed; [] for metadata of another writer (or none)."""
    if not metadata or not metadata.startswith(_PREFIX):
        return []
    try:
        return sorted({int(o) for o in metadata[len(_PREFIX) :].split(",") if o})
    except ValueError:
        return []


class PartitionProgress:
    """Offsets handed out and finished for one partition.

    Records of different keys finish in any order. The commit point is one past the last
    record fetched, with the records still in flight listed beside it, so a commit never skips
    a record that has not been handled and never makes a handled one be handled again.
    """

    def __init__(self) -> None:
        self._in_flight: list[int] = []
        self._done: set[int] = set()
        self._next = -1
        # Listed as in flight by the previous owner's commit, not yet read again.
        self._awaited: set[int] = set()

    @classmethod
    def resumed(cls, committed: int, pending: list[int]) -> PartitionProgress:
        """The progress a commit of ``committed`` with ``pending`` in flight describes."""
        progress = cls()
        progress._next = committed
        progress._awaited = {o for o in pending if o < committed}
        progress._in_flight = sorted(progress._awaited)
        return progress

    def admit(self, offset: int) -> bool:
        """Whether a fetched record is to be handled (and is now in flight); False for one a
        previous owner handled already (below its commit point and not listed in flight)."""
        # Records arrive in offset order: an awaited one below this was deleted meanwhile
        # (retention) and will never arrive.
        for gone in [o for o in self._awaited if o < offset]:
            self._awaited.discard(gone)
            self.finished(gone)
        if offset in self._awaited:
            self._awaited.discard(offset)
            return True
        if offset < self._next:
            return False
        self.started(offset)
        return True

    def started(self, offset: int) -> None:
        heapq.heappush(self._in_flight, offset)
        self._next = max(self._next, offset + 1)

    def finished(self, offset: int) -> None:
        self._done.add(offset)
        while self._in_flight and self._in_flight[0] in self._done:
            self._done.discard(heapq.heappop(self._in_flight))

    @property
    def busy(self) -> int:
        return len(self._in_flight) - len(self._awaited)

    @property
    def resume_from(self) -> int | None:
        """Where a new owner starts reading: the oldest record still in flight, if any."""
        return self._in_flight[0] if self._in_flight else None

    def commit_point(self, limit: int = METADATA_LIMIT) -> tuple[int, str] | None:
        """(offset, metadata) to commit, or None before anything was fetched. When the list of
        records in flight would not fit ``limit``, the offset stops at the first one left out
        (those past it are read again: more redelivery, never a record skipped)."""
        if self._next < 0:
            return None
        pending = sorted(o for o in self._in_flight if o not in self._done)
        offset = self._next
        while pending and len(encode_pending(pending)) > limit:
            offset = pending.pop()
        return offset, encode_pending(pending)
