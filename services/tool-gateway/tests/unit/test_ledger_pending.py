"""A finished call whose ledger write the broker refused is written in the background and
never runs again: a retry of its key waits for that write, or is told the result is not yet
recorded. Run over both tables (the compacted-topic one over a publisher that refuses sends,
and the in-memory one over a bus that does), with the failures injected at each step."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest

from keel_contracts.events import ToolResultRecorded
from keel_contracts.topics import TOOL_RESULTS
from keel_core.bus.table import CompactedTable, Table
from keel_core.settings import KafkaSettings
from keel_core.testing import FlakyPublisher, InMemoryBus, InMemoryPublisher, InMemoryTable
from keel_tool_gateway.adapters.kafka_ledger import KafkaLedger
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.domain.registry import Tool
from keel_tool_gateway.errors import ResultNotRecorded
from keel_tool_gateway.testing import CountingInput, CountingTool, StaticPolicy, SteppedSleep

CTX = RequestContext(session_id="s1", agent_id="a1")
KEY = "s1:0:0"


@dataclass
class Topic:
    """One ledger topic and a way to make its next writes fail, as either table sees it."""

    new_table: Callable[[], Table]
    fail_next: Callable[[int], None]
    records: Callable[[], list[ToolResultRecorded]]


@pytest.fixture(params=["compacted", "in_memory"])
async def topic(request: pytest.FixtureRequest) -> AsyncIterator[Topic]:
    made: list[CompactedTable] = []
    if request.param == "compacted":
        sent = InMemoryPublisher()
        publisher = FlakyPublisher(sent)

        def compacted() -> Table:
            table = CompactedTable(KafkaSettings(), TOOL_RESULTS, publisher, "tool-gateway")
            made.append(table)
            return table

        def sent_records() -> list[ToolResultRecorded]:
            return [e.parse(ToolResultRecorded) for e in sent.envelopes(TOOL_RESULTS)]

        yield Topic(compacted, lambda n: publisher.fail_next(n, topic=TOOL_RESULTS), sent_records)
    else:
        bus = InMemoryBus()

        def in_memory() -> Table:
            return InMemoryTable(bus, TOOL_RESULTS, "tool-gateway")

        def bus_records() -> list[ToolResultRecorded]:
            return bus.parsed(TOOL_RESULTS, ToolResultRecorded)

        yield Topic(in_memory, lambda n: bus.fail_next(TOOL_RESULTS, n), bus_records)
    for table in made:
        await table.stop()


def gateway(ledger: KafkaLedger, counter: CountingTool) -> ExecutionService:
    registry = builtin_registry()
    registry.register(counter.tool)
    return ExecutionService(registry, StaticPolicy("allow"), ledger)


async def test_a_refused_write_lands_in_the_background_and_a_restart_replays_it(
    topic: Topic,
) -> None:
    counter = CountingTool(effects="idempotent")
    sleep = SteppedSleep()
    ledger = KafkaLedger(topic.new_table(), sleep=sleep)
    service = gateway(ledger, counter)
    topic.fail_next(1)
    with pytest.raises(ResultNotRecorded):
        await service.execute(CTX, "counter", '{"n": 1}', KEY)
    assert ledger.get(KEY) is None, "a refused write is not answered from memory"
    assert ledger.pending == [KEY]

    await sleep.waiting()
    sleep.step()  # the background retry, with no call of the key meanwhile
    assert await ledger.flush()
    assert [r.idempotency_key for r in topic.records()] == [KEY]

    again = await service.execute(CTX, "counter", '{"n": 1}', KEY)
    assert again.replayed
    assert again.status == "ok"
    loaded = topic.new_table()
    for record in topic.records():  # what a restarted replica loads from the topic
        await loaded.put(record.idempotency_key, record)
    other = await gateway(KafkaLedger(loaded), counter).execute(CTX, "counter", '{"n": 1}', KEY)
    assert other.replayed
    assert counter.runs == 1


async def test_a_retry_while_the_write_is_pending_waits_for_it_and_never_reruns(
    topic: Topic,
) -> None:
    counter = CountingTool(effects="idempotent")
    sleep = SteppedSleep()
    ledger = KafkaLedger(topic.new_table(), sleep=sleep, pending_wait_s=30.0)
    service = gateway(ledger, counter)
    topic.fail_next(1)
    with pytest.raises(ResultNotRecorded):
        await service.execute(CTX, "counter", '{"n": 1}', KEY)
    await sleep.waiting()

    retry = asyncio.create_task(service.execute(CTX, "counter", '{"n": 1}', KEY))
    await asyncio.sleep(0)
    assert not retry.done(), "the retry waits for the pending write"
    sleep.step()
    result = await retry
    assert result.replayed
    assert result.status == "ok"
    assert counter.runs == 1
    assert [r.idempotency_key for r in topic.records()] == [KEY]


async def test_a_retry_while_the_write_keeps_failing_is_told_not_recorded_and_never_reruns(
    topic: Topic,
) -> None:
    counter = CountingTool(effects="idempotent")
    sleep = SteppedSleep()
    ledger = KafkaLedger(topic.new_table(), sleep=sleep, pending_wait_s=0.0, retry_max_s=0.8)
    service = gateway(ledger, counter)
    topic.fail_next(4)  # the call's write, then three background tries
    with pytest.raises(ResultNotRecorded):
        await service.execute(CTX, "counter", '{"n": 1}', KEY)
    for _ in range(3):
        await sleep.waiting()
        sleep.step()
        await sleep.waiting()  # that try failed: the next one is waiting
        with pytest.raises(ResultNotRecorded, match="not yet recorded"):
            await service.execute(CTX, "counter", '{"n": 1}', KEY)
        assert ledger.get(KEY) is None
    sleep.step()
    assert await ledger.flush()
    assert sleep.delays == [0.2, 0.4, 0.8, 0.8], "backs off, up to retry_max_s"
    result = await service.execute(CTX, "counter", '{"n": 1}', KEY)
    assert result.replayed
    assert counter.runs == 1
    assert [r.idempotency_key for r in topic.records()] == [KEY]


async def test_closing_stops_the_retries_of_a_write_that_never_lands(topic: Topic) -> None:
    sleep = SteppedSleep()
    ledger = KafkaLedger(topic.new_table(), sleep=sleep)
    service = gateway(ledger, CountingTool(effects="idempotent"))
    topic.fail_next(1)
    with pytest.raises(ResultNotRecorded):
        await service.execute(CTX, "counter", '{"n": 1}', KEY)
    await sleep.waiting()
    await ledger.aclose(grace_s=0.0)
    assert ledger.pending == []
    assert topic.records() == []


async def test_an_at_most_once_call_whose_intent_is_refused_does_not_run(topic: Topic) -> None:
    """The first write (the intent) fails: nothing ran, nothing is recorded, and the caller is
    told the ledger is unavailable; the retry writes its intent and runs once."""
    counter = CountingTool()
    ledger = KafkaLedger(topic.new_table(), sleep=SteppedSleep())
    service = gateway(ledger, counter)
    topic.fail_next(1)
    refused = await service.execute(CTX, "counter", '{"n": 1}', KEY)
    assert (refused.status, refused.dependency_unavailable) == ("error", True)
    assert counter.runs == 0
    assert (ledger.get(KEY), ledger.started(KEY)) == (None, None)
    ran = await service.execute(CTX, "counter", '{"n": 1}', KEY)
    assert (ran.status, ran.replayed, counter.runs) == ("ok", False, 1)
    assert ledger.started(KEY) is None, "the result replaced the intent"


async def test_an_at_most_once_call_whose_result_is_refused_keeps_its_intent_and_never_reruns(
    topic: Topic,
) -> None:
    """The second write (the result) fails after the effect: the key keeps its intent (a
    replica that restarts sees a run it must not repeat), the background write replaces it,
    and no retry runs the tool again."""
    runs: list[str] = []

    async def effect(_: CountingInput) -> str:
        runs.append("ran")
        topic.fail_next(1)  # the broker goes away between the effect and its result
        return "done"

    registry = builtin_registry()
    registry.register(Tool("effect", "acts once", CountingInput, effect))
    sleep = SteppedSleep()
    ledger = KafkaLedger(topic.new_table(), sleep=sleep)
    service = ExecutionService(registry, StaticPolicy("allow"), ledger)
    with pytest.raises(ResultNotRecorded):
        await service.execute(CTX, "effect", "{}", KEY)
    started = ledger.started(KEY)
    assert started is not None
    assert (started.tool, ledger.get(KEY)) == ("effect", None)
    await sleep.waiting()
    sleep.step()
    assert await ledger.flush()
    assert ledger.started(KEY) is None
    again = await service.execute(CTX, "effect", "{}", KEY)
    assert (again.output, again.replayed, runs) == ("done", True, ["ran"])
