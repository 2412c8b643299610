"""The bus on the real broker: delivery, commit-after-processing, dead-lettering."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from keel_contracts import topics
from keel_contracts.events import Envelope, TaskSubmitted
from keel_contracts.topics import TopicSpec, dlq_of
from keel_core.bus import (
    DeadLetterFailed,
    EventConsumer,
    EventProducer,
    PoisonMessage,
    ensure_topics,
)
from keel_core.bus.connect import client_options
from keel_core.settings import KafkaSettings
from keel_core.testing import FlakyPublisher

pytestmark = pytest.mark.kafka


@pytest.fixture
async def topic(kafka: KafkaSettings) -> str:
    name = f"test.{uuid.uuid4().hex[:12]}"
    await ensure_topics(kafka, [TopicSpec(name), TopicSpec(dlq_of(name))])
    return name


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(kafka, "test")
    await p.start()
    yield p
    await p.stop()


async def read_all(kafka: KafkaSettings, topic: str, count: int) -> list[tuple[bytes, dict]]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        **client_options(kafka),
    )
    await consumer.start()
    out: list[tuple[bytes, dict]] = []  # type: ignore[type-arg]
    try:
        async with asyncio.timeout(30):
            while len(out) < count:
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    out += [(r.value or b"", dict(r.headers)) for r in records]
    finally:
        await consumer.stop()
    return out


def task(goal: str, session: str) -> Envelope:
    return Envelope.wrap(TaskSubmitted(goal=goal), source="test", session_id=session)


async def run_consumer(consumer: EventConsumer, until: asyncio.Event) -> None:
    await consumer.start()
    runner = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(60):
            await until.wait()
    finally:
        await consumer.stop()
        await runner
        await consumer.close()


async def test_poison_messages_go_to_the_dlq_and_the_consumer_keeps_going(
    kafka: KafkaSettings, topic: str, producer: EventProducer
) -> None:
    handled: list[str] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        goal = envelope.parse(TaskSubmitted).goal
        if goal == "poison":
            raise PoisonMessage("this task can never run")
        handled.append(goal)
        if goal == "last":
            done.set()

    await producer.send_raw(topic, b"\x00 not an envelope", key="s1", headers=[])
    await producer.publish(topic, task("poison", "s2"))
    await producer.publish(topic, task("first", "s3"))
    await producer.publish(topic, task("last", "s3"))
    consumer = EventConsumer(
        kafka, topics=[topic], group_id=f"g-{topic}", handler=handler, dlq_producer=producer
    )
    await run_consumer(consumer, done)

    assert handled == ["first", "last"]
    dead = await read_all(kafka, dlq_of(topic), 2)
    assert dead[0][0] == b"\x00 not an envelope"
    assert dead[0][1]["keel-dlq-reason"].startswith(b"undecodable envelope")
    assert dead[0][1]["keel-dlq-topic"] == topic.encode()
    assert dead[1][1]["keel-dlq-reason"] == b"rejected: this task can never run"


async def test_offsets_are_committed_only_after_handling(
    kafka: KafkaSettings, topic: str, producer: EventProducer
) -> None:
    group = f"g-{topic}"
    for i in range(3):
        await producer.publish(topic, task(f"t{i}", f"s{i}"))
    seen_first: list[str] = []
    first_done = asyncio.Event()

    async def first(envelope: Envelope) -> None:
        seen_first.append(envelope.parse(TaskSubmitted).goal)
        if len(seen_first) == 3:
            first_done.set()

    await run_consumer(
        EventConsumer(kafka, topics=[topic], group_id=group, handler=first, dlq_producer=producer),
        first_done,
    )
    await producer.publish(topic, task("t3", "s3"))
    seen_second: list[str] = []
    second_done = asyncio.Event()

    async def second(envelope: Envelope) -> None:
        seen_second.append(envelope.parse(TaskSubmitted).goal)
        second_done.set()

    await run_consumer(
        EventConsumer(kafka, topics=[topic], group_id=group, handler=second, dlq_producer=producer),
        second_done,
    )
    assert sorted(seen_first) == ["t0", "t1", "t2"]
    assert seen_second == ["t3"]


async def test_a_record_the_dlq_refuses_stops_the_consumer_and_is_redelivered(
    kafka: KafkaSettings, topic: str, producer: EventProducer
) -> None:
    group = f"g-{topic}"
    await producer.publish(topic, task("poison", "s0"))
    await producer.publish(topic, task("after", "s0"))
    refusing = FlakyPublisher(producer)
    refusing.fail_next(1_000)
    seen_first: list[str] = []

    async def first(envelope: Envelope) -> None:
        goal = envelope.parse(TaskSubmitted).goal
        seen_first.append(goal)
        if goal == "poison":
            raise PoisonMessage("this task can never run")

    consumer = EventConsumer(
        kafka,
        topics=[topic],
        group_id=group,
        handler=first,
        dlq_producer=refusing,
        dlq_retries=1,
        dlq_backoff_s=0.0,
    )
    await consumer.start()
    try:
        with pytest.raises(DeadLetterFailed):
            async with asyncio.timeout(60):
                await consumer.run()  # stops by itself: the service would restart
    finally:
        await consumer.close()
    assert seen_first == ["poison"], "later records of the key wait for the restart"

    seen_second: list[str] = []
    second_done = asyncio.Event()

    async def second(envelope: Envelope) -> None:
        goal = envelope.parse(TaskSubmitted).goal
        seen_second.append(goal)
        if goal == "poison":
            raise PoisonMessage("this task can never run")
        second_done.set()

    await run_consumer(
        EventConsumer(kafka, topics=[topic], group_id=group, handler=second, dlq_producer=producer),
        second_done,
    )
    assert seen_second == ["poison", "after"], "the restart reads the record again"
    dead = await read_all(kafka, dlq_of(topic), 1)
    assert dead[0][1]["keel-dlq-reason"] == b"rejected: this task can never run"


async def test_a_slow_key_does_not_hold_up_other_keys(
    kafka: KafkaSettings, topic: str, producer: EventProducer
) -> None:
    release = asyncio.Event()
    order: list[str] = []
    done = asyncio.Event()

    async def handler(envelope: Envelope) -> None:
        goal = envelope.parse(TaskSubmitted).goal
        if goal == "slow":
            await release.wait()
        order.append(goal)
        if goal == "fast":
            release.set()
        if len(order) == 3:
            done.set()

    await producer.publish(topic, task("slow", "a"))
    await producer.publish(topic, task("after-slow", "a"))
    await producer.publish(topic, task("fast", "b"))
    consumer = EventConsumer(
        kafka, topics=[topic], group_id=f"g-{topic}", handler=handler, dlq_producer=producer
    )
    await run_consumer(consumer, done)
    assert order == ["fast", "slow", "after-slow"]


async def test_after_a_crash_only_records_still_in_flight_are_redelivered(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    """A long handler (a session) must not hold back its partition's commit point: a crash
    redelivers it, not the records after it that were handled long ago."""
    topic = f"test.{uuid.uuid4().hex[:12]}"
    one_partition = kafka.model_copy(update={"topic_partitions": 1})
    await ensure_topics(one_partition, [TopicSpec(topic), TopicSpec(dlq_of(topic))])
    group = f"g-{topic}"
    await producer.publish(topic, task("long", "s-long"))
    for i in range(5):
        await producer.publish(topic, task(f"short{i}", f"s{i}"))
    seen_first: list[str] = []
    shorts_done = asyncio.Event()
    never = asyncio.Event()

    async def first(envelope: Envelope) -> None:
        goal = envelope.parse(TaskSubmitted).goal
        seen_first.append(goal)
        if goal == "long":
            await never.wait()  # still running when the process dies
        elif sum(g.startswith("short") for g in seen_first) == 5:
            shorts_done.set()

    crashed = EventConsumer(
        kafka, topics=[topic], group_id=group, handler=first, dlq_producer=producer
    )
    await crashed.start()
    runner = asyncio.create_task(crashed.run())
    async with asyncio.timeout(60):
        await shorts_done.wait()
    await crashed.stop()
    await runner
    # The loop commits after every poll; once more here so that the commit surely includes
    # the last short record (its poll's commit may have gone out while it was running).
    await crashed._commit()
    # A crash: no grace, no final commit; the handler dies with the process.
    for tasks in crashed._tasks.values():
        for t in tasks:
            t.cancel()
    await crashed._consumer.stop()

    await producer.publish(topic, task("new", "s-new"))
    seen_second: list[str] = []
    second_done = asyncio.Event()

    async def second(envelope: Envelope) -> None:
        seen_second.append(envelope.parse(TaskSubmitted).goal)
        if len(seen_second) == 2:
            second_done.set()

    await run_consumer(
        EventConsumer(kafka, topics=[topic], group_id=group, handler=second, dlq_producer=producer),
        second_done,
    )
    assert seen_second == ["long", "new"], "only the record in flight is read again"


async def test_catalog_topics_exist_with_their_policies(kafka: KafkaSettings) -> None:
    await ensure_topics(kafka)  # a second time: idempotent
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **client_options(kafka))
    await admin.start()
    try:
        described = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name)
                for name in (topics.AUDIT, topics.CHECKPOINTS, topics.TASKS)
            ]
        )
    finally:
        await admin.close()
    configs: dict[str, dict[str, str]] = {}
    for response in described:
        for _code, _msg, _type, name, entries in response.resources:
            configs[name] = {entry[0]: entry[1] for entry in entries}
    assert configs[topics.AUDIT]["retention.ms"] == "-1"
    assert configs[topics.AUDIT]["cleanup.policy"] == "delete"
    assert configs[topics.CHECKPOINTS]["cleanup.policy"] == "compact"
    assert configs[topics.TASKS]["cleanup.policy"] == "delete"
