"""Results remembered by idempotency key, so a replayed call returns what it returned before
instead of acting twice. This is the in-memory ledger (unit tests, single process); the durable
one over the compacted ``keel.tool-results`` is ``adapters.kafka_ledger.KafkaLedger``. Both
implement ``domain.ports.LedgerPort``."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from keel_tool_gateway.domain.models import ExecutionResult


@dataclass(frozen=True)
class LedgerEntry:
    # Hash of the call (tool and canonical arguments): a key reused for another call is refused.
    fingerprint: str
    tool: str
    result: ExecutionResult


class ResultLedger:
    """Least recently used entries go first once ``capacity`` is reached."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("ledger capacity must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[str, LedgerEntry] = OrderedDict()

    def get(self, key: str) -> LedgerEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    async def put(
        self, key: str, entry: LedgerEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
