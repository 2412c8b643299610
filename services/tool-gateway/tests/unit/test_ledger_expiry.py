"""Ledger entries past their retention are tombstoned on the topic (and leave every view);
newer ones stay and still answer their key."""

from __future__ import annotations

from datetime import timedelta

from keel_contracts.events import Envelope, ToolResultRecorded
from keel_contracts.topics import TOOL_RESULTS
from keel_core.settings import ServiceSettings
from keel_core.testing import InMemoryRuntime
from keel_tool_gateway.adapters.kafka_ledger import KafkaLedger
from keel_tool_gateway.adapters.ledger_expiry import LedgerSweeper

DAY = timedelta(days=1)


def recorded(key: str) -> Envelope:
    result = ToolResultRecorded(
        idempotency_key=key, tool="count", fingerprint="f", status="ok", output="1"
    )
    return Envelope.wrap(result, source="tool-gateway", session_id="s1")


async def test_entries_past_their_retention_are_tombstoned_newer_ones_answer() -> None:
    runtime = InMemoryRuntime("tool-gateway", ServiceSettings())
    old, new = recorded("s1:1:0"), recorded("s1:2:0")
    old = old.model_copy(update={"time": new.time - 9 * DAY})
    for envelope in (old, new):
        runtime.bus.append(TOOL_RESULTS, envelope.to_bytes(), envelope.data["idempotency_key"], [])
    table = runtime.table(TOOL_RESULTS)
    ledger = KafkaLedger(table)
    sweeper = LedgerSweeper(table, retention_s=8 * DAY.total_seconds(), interval_s=3600)
    async with runtime.running():
        assert ledger.get("s1:1:0") is not None

        assert await sweeper.sweep() == ["s1:1:0"]

        assert ledger.get("s1:1:0") is None
        kept = ledger.get("s1:2:0")
        assert kept is not None
        assert kept.result.output == "1"
        assert await sweeper.sweep() == []
    last = runtime.bus.records(TOOL_RESULTS)[-1]
    assert (last.key, last.value) == (b"s1:1:0", None)
