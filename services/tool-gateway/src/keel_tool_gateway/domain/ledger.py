"""Results remembered by idempotency key, so a replayed call returns what it returned before
instead of acting twice; and the intents of ``at_most_once`` calls about to run (a key whose
intent outlives its deadline without a result was cut short by a crash).

This is the in-memory ledger (unit tests, single process); the durable one over the compacted
``keel.tool-results`` is ``adapters.kafka_ledger.KafkaLedger``. Both implement
``domain.ports.LedgerPort``."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from keel_tool_gateway.domain.models import ExecutionResult

# Told of a refusal that is a security event (``security.denied``): the key, why, and the
# session and trace of the call it concerns. The service wires it to its audit.
SecurityDenied = Callable[[str, str, str, str], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class LedgerEntry:
    # Hash of the call (tool and canonical arguments): a key reused for another call is refused.
    fingerprint: str
    tool: str
    result: ExecutionResult
    # Whose call it was: a hit for another tenant or session is refused as a key reuse. Both ""
    # only in a record written before entries were bound (then it answers any caller).
    tenant: str = ""
    session_id: str = ""

    def belongs_to(self, tenant: str, session_id: str) -> bool:
        return bound_to(self.tenant, self.session_id, tenant, session_id)


@dataclass(frozen=True)
class StartedEntry:
    """An ``at_most_once`` call about to run: written (durably) before the run."""

    fingerprint: str
    tool: str
    # The gateway process running it (one id per process start).
    instance: str
    # Seconds since the epoch by which the run is over: done, or its process is dead.
    deadline: float
    tenant: str = ""
    session_id: str = ""

    def belongs_to(self, tenant: str, session_id: str) -> bool:
        return bound_to(self.tenant, self.session_id, tenant, session_id)


def bound_to(stored_tenant: str, stored_session: str, tenant: str, session_id: str) -> bool:
    """Whether an entry stored for (``stored_tenant``, ``stored_session``) may answer a call of
    (``tenant``, ``session_id``). Keys are ``session:iteration:index``, so only a caller that
    guessed or copied another session's key asks with a different scope."""
    if not stored_tenant and not stored_session:
        return True
    return (stored_tenant, stored_session) == (tenant or "default", session_id)


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
