"""Results remembered by idempotency key, so a replayed call returns what it returned before
instead of acting twice; and the intents of ``at_most_once`` calls about to run (a key whose
intent outlives its deadline without a result was cut short by a crash).

This is the in-memory ledger (unit tests, single process); the durable one over the compacted
``keel.tool-results`` is ``adapters.kafka_ledger.KafkaLedger``. Both implement
``domain.ports.LedgerPort``."""

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


@dataclass(frozen=True)
class StartedEntry:
    """An ``at_most_once`` call about to run: written (durably) before the run."""

    fingerprint: str
    tool: str
    # The gateway process running it (one id per process start).
    instance: str
    # Seconds since the epoch by which the run is over: done, or its process is dead.
    deadline: float


class ResultLedger:
    """Least recently used entries go first once ``capacity`` is reached."""

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("ledger capacity must be at least 1")
        self._capacity = capacity
        self._entries: OrderedDict[str, LedgerEntry] = OrderedDict()
        self._started: dict[str, StartedEntry] = {}

    def get(self, key: str) -> LedgerEntry | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def started(self, key: str) -> StartedEntry | None:
        return self._started.get(key)

    async def begin(
        self, key: str, entry: StartedEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        self._started[key] = entry

    async def abandon(self, key: str) -> None:
        self._started.pop(key, None)

    async def put(
        self, key: str, entry: LedgerEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        self._started.pop(key, None)
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
