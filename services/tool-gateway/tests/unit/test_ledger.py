"""The ledger port: what is stored, when, and what a repeated key gets, for the in-memory
ledger and the Kafka one (over a fake table; the real broker is in tests/integration)."""

import asyncio
from typing import Any

import pytest

from keel_contracts.errors import Unavailable
from keel_contracts.events import Envelope, EventData, TaskCancelRequested, ToolResultRecorded
from keel_tool_gateway.adapters.kafka_ledger import KafkaLedger
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import LedgerEntry, ResultLedger
from keel_tool_gateway.domain.models import ExecutionResult, RequestContext
from keel_tool_gateway.domain.ports import LedgerPort
from keel_tool_gateway.errors import ResultNotRecorded
from keel_tool_gateway.testing import CountingTool, FlakyLedger, StaticPolicy

CTX = RequestContext(session_id="s1", agent_id="a1", traceparent="00-abc-def-01")


class FakeTable:
    """CompactedTable's get/put over a dict, shared by 'replicas' like the topic would be."""

    def __init__(self) -> None:
        self.values: dict[str, Envelope] = {}
        self.puts: list[tuple[str, str, str]] = []

    def get(self, key: str) -> Envelope | None:
        return self.values.get(key)

    async def put(
        self, key: str, payload: EventData, *, session_id: str = "", trace: str = ""
    ) -> Envelope:
        envelope = Envelope.wrap(payload, source="t", session_id=session_id or key, trace=trace)
        self.values[key] = envelope
        self.puts.append((key, session_id, trace))
        return envelope


def gateway(ledger: LedgerPort, counter: CountingTool | None = None) -> Any:
    counter = counter or CountingTool()
    registry = builtin_registry()
    registry.register(counter.tool)
    policy = StaticPolicy("allow")
    return ExecutionService(registry, policy, ledger), counter, policy


async def test_kafka_ledger_round_trip_keeps_the_result_and_fingerprint() -> None:
    table = FakeTable()
    ledger = KafkaLedger(table)
    result = ExecutionResult(status="ok", output="42", rule_id="r", duration_ms=1.5, truncated=True)
    await ledger.put("k", LedgerEntry("fp", "calc", result), session_id="s", trace="t")
    assert table.puts == [("k", "s", "t")]
    record = table.values["k"].parse(ToolResultRecorded)
    assert (record.idempotency_key, record.tool, record.fingerprint) == ("k", "calc", "fp")
    assert ledger.get("k") == LedgerEntry("fp", "calc", result)
    assert ledger.get("other") is None


async def test_kafka_ledger_refuses_to_store_needs_approval() -> None:
    ledger = KafkaLedger(FakeTable())
    with pytest.raises(ValueError, match="needs_approval"):
        await ledger.put("k", LedgerEntry("fp", "t", ExecutionResult(status="needs_approval")))


async def test_kafka_ledger_ignores_a_record_of_another_type() -> None:
    table = FakeTable()
    await table.put("k", TaskCancelRequested(reason="x"))
    assert KafkaLedger(table).get("k") is None


@pytest.mark.parametrize("kind", ["memory", "kafka"])
async def test_a_new_instance_over_the_same_store_replays_without_running(kind: str) -> None:
    store: LedgerPort = ResultLedger() if kind == "memory" else KafkaLedger(FakeTable())
    first, counter, _ = gateway(store)
    ran = await first.execute(CTX, "counter", '{"n": 2}', "s1:0:0")
    # A restart, or another replica: a fresh service over the same ledger.
    second, counter2, policy2 = gateway(store)
    again = await second.execute(CTX, "counter", '{ "n":2 }', "s1:0:0")
    assert (counter.runs, counter2.runs, policy2.calls) == (1, 0, [])
    assert again.replayed is True
    assert (again.status, again.output, again.duration_ms) == ("ok", ran.output, ran.duration_ms)
    other = await second.execute(CTX, "counter", '{"n": 3}', "s1:0:0")
    assert other.error == "idempotency key 's1:0:0' was used for a different call; nothing ran"
    assert counter2.runs == 0


async def test_the_record_carries_the_session_and_trace() -> None:
    table = FakeTable()
    service, _, _ = gateway(KafkaLedger(table))
    await service.execute(CTX, "counter", "{}", "k")
    # The intent before the run, then the result in its place: both carry them.
    assert table.puts == [("k", "s1", "00-abc-def-01")] * 2
    assert table.values["k"].type == ToolResultRecorded.event_type


async def test_needs_approval_and_policy_down_are_not_stored() -> None:
    table = FakeTable()
    counter = CountingTool()
    registry = builtin_registry()
    registry.register(counter.tool)
    policy = StaticPolicy("require_approval")
    service = ExecutionService(registry, policy, KafkaLedger(table))
    await service.execute(CTX, "counter", "{}", "k")
    policy.error = Unavailable("down")
    await service.execute(CTX, "counter", "{}", "k")
    assert table.values == {}


async def test_a_result_that_cannot_be_recorded_is_withheld_and_never_runs_again() -> None:
    ledger = FlakyLedger(error=Unavailable("broker down"))
    service, counter, _ = gateway(ledger)
    with pytest.raises(ResultNotRecorded) as failed:
        await service.execute(CTX, "counter", "{}", "k")
    assert str(failed.value).startswith(
        "the call with idempotency key 'k' ran but its result could not be recorded ("
    )
    assert failed.value.result.status == "ok"
    assert isinstance(failed.value, Unavailable)
    # Still down: the retry tries the write again and does not run the tool.
    with pytest.raises(ResultNotRecorded):
        await service.execute(CTX, "counter", "{}", "k")
    ledger.error = None
    result = await service.execute(CTX, "counter", "{}", "k")
    assert (result.status, result.output, result.replayed) == ("ok", "counted", True)
    assert counter.runs == 1
    assert ledger.writes == 3
    assert ledger.get("k") is not None


async def test_a_caller_that_goes_away_does_not_stop_the_record() -> None:
    ledger = ResultLedger()
    service, counter, _ = gateway(ledger, CountingTool(sleep_s=0.1))
    caller = asyncio.create_task(service.execute(CTX, "counter", "{}", "k"))
    await asyncio.sleep(0.02)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    async with asyncio.timeout(2):
        while ledger.get("k") is None:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
    retry = await service.execute(CTX, "counter", "{}", "k")
    assert (retry.replayed, counter.runs) == (True, 1)


async def test_concurrent_duplicates_share_one_run_and_one_write() -> None:
    ledger = FlakyLedger()
    service, counter, policy = gateway(ledger, CountingTool(sleep_s=0.05))
    results = await asyncio.gather(
        *(service.execute(CTX, "counter", "{}", "same") for _ in range(5))
    )
    assert (counter.runs, len(policy.calls), ledger.writes) == (1, 1, 1)
    assert sum(r.replayed for r in results) == 4


async def test_a_concurrent_duplicate_with_other_arguments_is_refused_at_once() -> None:
    service, counter, _ = gateway(ResultLedger(), CountingTool(sleep_s=0.05))
    first = asyncio.create_task(service.execute(CTX, "counter", '{"n": 1}', "k"))
    await asyncio.sleep(0.01)
    other = await service.execute(CTX, "counter", '{"n": 2}', "k")
    assert "was used for a different call" in other.error
    assert (await first).status == "ok"
    assert counter.runs == 1
