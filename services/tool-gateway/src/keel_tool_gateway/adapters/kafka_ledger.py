"""The durable ledger: the compacted ``keel.tool-results`` topic (key = idempotency key) read
through a ``keel_core.bus.table.Table`` (``runtime.table(TOOL_RESULTS)``: the compacted-topic
one in the service, an in-memory one in component tests). Every replica loads the whole topic at
start and follows it, so a key finished by any replica, before or after a restart, is answered
from here.
"""

from __future__ import annotations

import logging
from typing import Literal

from keel_contracts.events import ToolResultRecorded
from keel_core.bus.table import Table
from keel_tool_gateway.domain.ledger import LedgerEntry
from keel_tool_gateway.domain.models import ExecutionResult, ExecutionStatus

log = logging.getLogger(__name__)

_STORED: dict[ExecutionStatus, Literal["ok", "error", "denied"]] = {
    "ok": "ok",
    "error": "error",
    "denied": "denied",
}


class KafkaLedger:
    def __init__(self, table: Table) -> None:
        self._table = table

    def get(self, key: str) -> LedgerEntry | None:
        envelope = self._table.get(key)
        if envelope is None:
            return None
        try:
            record = envelope.parse(ToolResultRecorded)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            log.warning("ignoring unreadable ledger record %s: %s", key, exc)
            return None
        result = ExecutionResult(
            status=record.status,
            output=record.output,
            error=record.error,
            rule_id=record.rule_id,
            duration_ms=record.duration_ms,
            truncated=record.truncated,
        )
        return LedgerEntry(record.fingerprint, record.tool, result)

    async def put(
        self, key: str, entry: LedgerEntry, *, session_id: str = "", trace: str = ""
    ) -> None:
        """Returns once the broker has acknowledged the record (acks=all)."""
        status = _STORED.get(entry.result.status)
        if status is None:
            raise ValueError(f"a {entry.result.status} result is not stored in the ledger")
        result = entry.result
        record = ToolResultRecorded(
            idempotency_key=key,
            tool=entry.tool,
            fingerprint=entry.fingerprint,
            status=status,
            output=result.output,
            error=result.error,
            rule_id=result.rule_id,
            duration_ms=result.duration_ms,
            truncated=result.truncated,
        )
        await self._table.put(key, record, session_id=session_id, trace=trace)
