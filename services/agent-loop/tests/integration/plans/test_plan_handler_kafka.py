"""The plan orchestrator on the real broker, with the workers simulated: dispatch order and
parallelism, cancellation after a failure, a restart in the middle of a plan (state from the
compacted topic), the final PlanFinished and keel.results record, and a rejected cycle.

Each test gets topics of its own, so a full stack running in the same test session (with its
own orchestrator on the real keel.plans) never sees these plans.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from keel_agent_loop.plans.handler import PlanHandler, PlanTopics
from keel_contracts.events import Envelope, EventData, TaskFailed, TaskSubmitted
from keel_contracts.events.plans import (
    NodeFinished,
    PlanFinished,
    PlanNode,
    PlanSpec,
    PlanSubmitted,
)
from keel_contracts.topics import TopicSpec
from keel_core.bus import EventProducer, ensure_topics
from keel_core.bus.connect import client_options
from keel_core.bus.consumer import EventConsumer
from keel_core.bus.reader import topic_partitions
from keel_core.bus.table import CompactedTable
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.kafka


@dataclass
class Seen:
    topic: str
    key: str
    envelope: Envelope


class Reader:
    """Everything on the test's topics from the beginning, without a consumer group."""

    def __init__(self, kafka: KafkaSettings, topics: list[str]) -> None:
        self._kafka = kafka
        self._topics = topics
        self.seen: list[Seen] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            **client_options(kafka),
        )

    async def start(self) -> None:
        await self._consumer.start()
        partitions = await self._partitions()
        self._consumer.assign(partitions)
        await self._consumer.seek_to_beginning(*partitions)

    async def _partitions(self, attempts: int = 50) -> list[TopicPartition]:
        """Topics created a moment ago take a few metadata refreshes to show up."""
        for _ in range(attempts):
            found = [
                tp for t in self._topics for tp in await topic_partitions(self._consumer, t, 1)
            ]
            if {tp.topic for tp in found} == set(self._topics):
                return found
            await asyncio.sleep(0.2)
        raise AssertionError(f"topics {self._topics} did not show up")

    async def stop(self) -> None:
        await self._consumer.stop()

    async def until(self, done: Callable[[list[Seen]], bool], timeout_s: float = 20) -> None:
        async with asyncio.timeout(timeout_s):
            while not done(self.seen):
                batches = await self._consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    for r in records:
                        envelope = Envelope.from_bytes(r.value or b"")
                        self.seen.append(Seen(r.topic, (r.key or b"").decode(), envelope))

    def of(self, topic: str, event_type: str = "") -> list[Seen]:
        return [
            s
            for s in self.seen
            if s.topic == topic and (not event_type or s.envelope.type == event_type)
        ]


class Orchestrator:
    """What ``install_plans`` registers on the runtime: a table and a consumer group."""

    def __init__(
        self,
        kafka: KafkaSettings,
        producer: EventProducer,
        topics: PlanTopics,
        checkpoints: str,
        group: str,
    ) -> None:
        self.table = CompactedTable(kafka, checkpoints, producer, "test-plans")
        handler = PlanHandler(self.table, producer, topics=topics)
        self.consumer = EventConsumer(
            kafka, topics=[topics.plans], group_id=group, handler=handler, dlq_producer=producer
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.table.start()
        await self.consumer.start()
        self._task = asyncio.create_task(self.consumer.run())

    async def stop(self) -> None:
        await self.consumer.stop()
        if self._task:
            await self._task
        await self.consumer.close(5)
        await self.table.stop()


@dataclass
class Env:
    kafka: KafkaSettings
    producer: EventProducer
    topics: PlanTopics
    checkpoints: str
    group: str
    reader: Reader

    def orchestrator(self) -> Orchestrator:
        return Orchestrator(self.kafka, self.producer, self.topics, self.checkpoints, self.group)

    async def send(self, payload: EventData, key: str) -> None:
        envelope = Envelope.wrap(payload, source="test", session_id=key)
        await self.producer.publish(self.topics.plans, envelope, key=key)

    async def node_done(self, plan: str, node: str, ok: bool = True) -> None:
        await self.send(
            NodeFinished(
                plan_id=plan,
                node_id=node,
                session_id=f"{plan}.{node}",
                status="succeeded" if ok else "failed",
                output=f"output of {node}",
                error="" if ok else f"{node} broke",
            ),
            plan,
        )

    def dispatched(self) -> list[str]:
        return [s.key for s in self.reader.of(self.topics.subtasks)]


@pytest.fixture
async def env(kafka: KafkaSettings) -> AsyncIterator[Env]:
    suffix = uuid.uuid4().hex[:8]
    topics = PlanTopics(
        plans=f"test.plans.{suffix}",
        subtasks=f"test.subtasks.{suffix}",
        results=f"test.results.{suffix}",
        task_events=f"test.task-events.{suffix}",
    )
    checkpoints = f"test.checkpoints.{suffix}"
    await ensure_topics(
        kafka,
        [
            TopicSpec(topics.plans, has_dlq=True),
            TopicSpec(f"{topics.plans}.dlq"),
            TopicSpec(topics.subtasks),
            TopicSpec(topics.results),
            TopicSpec(topics.task_events),
            TopicSpec(checkpoints, cleanup="compact", retention_ms=-1),
        ],
    )
    producer = EventProducer(kafka, "test-plans")
    await producer.start()
    reader = Reader(kafka, [topics.plans, topics.subtasks, topics.results])
    try:
        await reader.start()
        yield Env(kafka, producer, topics, checkpoints, f"test-plans-{suffix}", reader)
    finally:
        await reader.stop()
        await producer.stop()


async def test_dag_parallelism_cancellation_restart_and_result(env: Env) -> None:
    spec = PlanSpec(
        plan_id="dag-1",
        goal="a DAG",
        max_parallel=2,
        nodes=[
            PlanNode(id="a", goal="What is 1 + 1?"),
            PlanNode(id="b", goal="What is 2 + 2?"),
            PlanNode(id="c", goal="What is 3 + 3?"),
            PlanNode(id="d", goal="after {deps.a}", depends_on=["a"]),
            PlanNode(id="e", goal="after d", depends_on=["d"]),
            PlanNode(id="f", goal="after {deps.b}", depends_on=["b"]),
        ],
    )
    first = env.orchestrator()
    await first.start()
    try:
        await env.send(PlanSubmitted(plan=spec), "dag-1")
        await env.reader.until(lambda _: len(env.dispatched()) >= 2)
        with contextlib.suppress(TimeoutError):  # nothing more may come: the limit is 2
            await env.reader.until(lambda _: len(env.dispatched()) > 2, timeout_s=1)
        # Sub-tasks are keyed by session, so they land on different partitions: compare sets.
        assert sorted(env.dispatched()) == ["dag-1.a", "dag-1.b"]
        (a_task,) = [s for s in env.reader.of(env.topics.subtasks) if s.key == "dag-1.a"]
        task = a_task.envelope.parse(TaskSubmitted)
        assert (task.goal, task.metadata) == (
            "What is 1 + 1?",
            {"plan_id": "dag-1", "node_id": "a"},
        )

        await env.node_done("dag-1", "a", ok=False)  # cancels d and e, frees a slot for c
        await env.reader.until(lambda _: len(env.dispatched()) >= 3)
        assert sorted(env.dispatched()) == ["dag-1.a", "dag-1.b", "dag-1.c"]
    finally:
        await first.stop()

    # A new orchestrator (same group) continues from the checkpoint in the compacted topic.
    second = env.orchestrator()
    await second.start()
    try:
        await env.node_done("dag-1", "b")
        await env.node_done("dag-1", "a")  # a late duplicate: ignored
        await env.reader.until(lambda _: len(env.dispatched()) >= 4)
        assert sorted(env.dispatched()) == ["dag-1.a", "dag-1.b", "dag-1.c", "dag-1.f"]
        (f_task,) = [s for s in env.reader.of(env.topics.subtasks) if s.key == "dag-1.f"]
        assert f_task.envelope.parse(TaskSubmitted).goal == "after output of b"
        await env.node_done("dag-1", "c")
        await env.node_done("dag-1", "f")
        await env.reader.until(lambda _: bool(env.reader.of(env.topics.results)))
    finally:
        await second.stop()

    assert sorted(env.dispatched()) == ["dag-1.a", "dag-1.b", "dag-1.c", "dag-1.f"]
    (done,) = env.reader.of(env.topics.plans, PlanFinished.event_type)
    finished = done.envelope.parse(PlanFinished)
    assert finished.status == "failed"
    assert finished.nodes == {
        "a": "failed",
        "b": "succeeded",
        "c": "succeeded",
        "d": "cancelled",
        "e": "cancelled",
        "f": "succeeded",
    }
    (result,) = env.reader.of(env.topics.results)
    assert result.key == "dag-1"
    assert result.envelope.parse(TaskFailed).error == "node a failed: a broke; cancelled: d, e"


async def test_cycle_is_rejected_with_a_failed_plan_and_result(env: Env) -> None:
    spec = PlanSpec(
        plan_id="cyclic",
        nodes=[
            PlanNode(id="x", goal="x", depends_on=["z"]),
            PlanNode(id="y", goal="y", depends_on=["x"]),
            PlanNode(id="z", goal="z", depends_on=["y"]),
        ],
    )
    orchestrator = env.orchestrator()
    await orchestrator.start()
    try:
        await env.send(PlanSubmitted(plan=spec), "cyclic")
        await env.reader.until(lambda _: bool(env.reader.of(env.topics.results)))
    finally:
        await orchestrator.stop()
    assert env.dispatched() == []
    (done,) = env.reader.of(env.topics.plans, PlanFinished.event_type)
    assert done.envelope.parse(PlanFinished).error == "invalid plan: cycle: x -> z -> y -> x"
    (result,) = env.reader.of(env.topics.results)
    assert result.key == "cyclic"
    assert "cycle: x -> z -> y -> x" in result.envelope.parse(TaskFailed).error
