"""The in-memory runtime behaves like the real one where component tests rely on it:
consumers see records in order and dead-letter failures, tables read their own and others'
writes, followers load then follow, hooks run in order and reverse."""

from __future__ import annotations

import asyncio
import inspect

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import MessageSizeTooLargeError

from keel_contracts.events import Envelope, PlanCheckpoint, TaskCancelRequested, TaskSubmitted
from keel_core.bus.consumer import PoisonMessage
from keel_core.settings import ServiceSettings
from keel_core.testing import (
    MAX_RECORD_BYTES,
    BusPublisher,
    FakeClock,
    InMemoryBus,
    InMemoryRuntime,
    InMemoryTable,
)


def task(goal: str, session_id: str = "s1") -> Envelope:
    return Envelope.wrap(TaskSubmitted(goal=goal), source="test", session_id=session_id)


async def test_a_consumer_handles_in_order_and_dead_letters_what_fails() -> None:
    runtime = InMemoryRuntime("svc", ServiceSettings())
    seen: list[str] = []

    async def handle(envelope: Envelope) -> None:
        goal = envelope.parse(TaskSubmitted).goal
        if goal == "poison":
            raise PoisonMessage("cannot handle this")
        seen.append(goal)

    runtime.consume(["tasks"], "group", handle)
    async with runtime.running():
        for goal in ("one", "poison", "two"):
            await runtime.producer.publish("tasks", task(goal))
        await runtime.settle()
    assert seen == ["one", "two"]
    [dead] = runtime.bus.records("tasks.dlq")
    assert dead.envelope() is not None
    assert dict(dead.headers)["keel-dlq-reason"] == b"cannot handle this"


async def test_tables_see_their_own_writes_and_each_others() -> None:
    bus = InMemoryBus()
    first = InMemoryRuntime("a", ServiceSettings(), bus)
    second = InMemoryRuntime("b", ServiceSettings(), bus)
    mine, theirs = first.table("state"), second.table("state")
    await mine.put("k1", TaskSubmitted(goal="before start"))
    async with first.running(), second.running():
        assert theirs.get("k1") is not None  # loaded from the topic at start
        await theirs.put("k2", TaskSubmitted(goal="from b"))
        await mine.delete("k1")
        assert mine.get("k2") is not None
        assert theirs.get("k1") is None
        assert sorted(mine.keys()) == ["k2"]


async def test_a_follower_loads_what_is_there_then_follows() -> None:
    runtime = InMemoryRuntime("svc", ServiceSettings())
    follower = runtime.follower("control", "control")
    await runtime.producer.publish("control", task("old"))
    followed: list[str] = []

    async def apply(envelope: Envelope) -> None:
        followed.append(envelope.type)

    async with runtime.running():
        loaded = await follower.load()
        follower.follow(apply)
        cancel = TaskCancelRequested(reason="stop")
        await runtime.producer.publish("control", Envelope.wrap(cancel, source="t", session_id="s"))
        for _ in range(100):
            if followed:
                break
            await asyncio.sleep(0.01)
    assert [e.parse(TaskSubmitted).goal for e in loaded] == ["old"]
    assert followed == [TaskCancelRequested.event_type]


async def test_start_hooks_run_in_order_and_stop_hooks_in_reverse() -> None:
    runtime = InMemoryRuntime("svc", ServiceSettings())
    calls: list[str] = []
    for name in ("a", "b"):

        async def start(name: str = name) -> None:
            calls.append(f"start {name}")

        async def stop(name: str = name) -> None:
            calls.append(f"stop {name}")

        runtime.on_start(start)
        runtime.on_stop(stop)
    async with runtime.running():
        pass
    assert calls == ["start a", "start b", "stop b", "stop a"]


def test_the_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(100.0)
    assert clock() == 100.0
    clock.advance(2.5)
    assert clock() == 102.5
    assert clock.utcnow().timestamp() == 102.5


async def test_the_bus_refuses_a_record_the_real_producer_would_refuse() -> None:
    """Component tests must fail where production would: aiokafka refuses a record over its
    ``max_request_size`` (EventProducer keeps the default) before it reaches the broker."""
    default = inspect.signature(AIOKafkaProducer).parameters["max_request_size"].default
    assert default == MAX_RECORD_BYTES
    bus = InMemoryBus()
    table = InMemoryTable(bus, "table", "test")
    await table.start()
    fits = PlanCheckpoint(status="running", state={"x": "x" * (MAX_RECORD_BYTES - 4096)})
    too_big = PlanCheckpoint(status="running", state={"x": "x" * MAX_RECORD_BYTES})

    await table.put("k", fits)
    with pytest.raises(MessageSizeTooLargeError):
        await table.put("k", too_big)
    with pytest.raises(MessageSizeTooLargeError):
        await BusPublisher(bus).publish("tasks", Envelope.wrap(too_big, source="t", session_id="s"))
    assert [len(r.value or b"") < MAX_RECORD_BYTES for r in bus.records("table")] == [True]
    assert bus.records("tasks") == []
