"""Results remembered by idempotency key, so a replayed call returns what it returned before
instead of acting twice. In memory and bounded; the durable ledger comes later."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from keel_tool_gateway.domain.models import ExecutionResult


@dataclass(frozen=True)
class LedgerEntry:
    # Hash of the call (tool and canonical arguments): a key reused for another call is refused.
    fingerprint: str
    result: ExecutionResult


class ResultLedger:
    """Least recently used entries go first once ``capacity`` is reached."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("ledger capacity must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[str, LedgerEntry] = OrderedDict()

    def get(self, key: str) -> LedgerEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: LedgerEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
