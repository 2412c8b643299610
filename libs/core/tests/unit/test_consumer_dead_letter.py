"""A record the consumer can neither handle nor dead-letter never stalls its key or its
partition: the DLQ write is retried, and if it never lands the loop stops (the service
restarts) without committing past the record or handling later records of its key.

The loop's dispatch is driven by hand with records as aiokafka hands them over, so no broker is
needed; the real broker's redelivery is in tests/integration/test_bus.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from keel_contracts.events import Envelope, TaskCancelRequested
from keel_core.bus.consumer import EventConsumer, PoisonMessage
from keel_core.bus.deadletter import DeadLetterFailed
from keel_core.settings import KafkaSettings
from keel_core.testing import FlakyPublisher, InMemoryPublisher

TOPIC = "keel.tasks"
TP = TopicPartition(TOPIC, 0)


def record(offset: int, key: bytes, reason: str) -> ConsumerRecord[bytes, bytes]:
    envelope = Envelope.wrap(TaskCancelRequested(reason=reason), source="t", session_id="s")
    return ConsumerRecord(
        TOPIC, 0, offset, 0, 0, key, envelope.to_bytes(), None, 1, 1, (("h", b"v"),)
    )


class Handler:
    """Rejects records whose reason is ``poison``; remembers the rest."""

    def __init__(self) -> None:
        self.handled: list[str] = []

    async def __call__(self, envelope: Envelope) -> None:
        reason = envelope.parse(TaskCancelRequested).reason
        if reason == "poison":
            raise PoisonMessage("cannot be handled")
        self.handled.append(reason)


@pytest.fixture
async def made() -> AsyncIterator[list[EventConsumer]]:
    consumers: list[EventConsumer] = []
    yield consumers
    for consumer in consumers:
        await consumer._consumer.stop()


def consumer_of(
    made: list[EventConsumer], handler: Handler, dlq: FlakyPublisher, retries: int = 2
) -> EventConsumer:
    consumer = EventConsumer(
        KafkaSettings(),
        topics=[TOPIC],
        group_id="g",
        handler=handler,
        dlq_producer=dlq,
        dlq_retries=retries,
        dlq_backoff_s=0.0,
    )
    made.append(consumer)
    return consumer


async def settled(consumer: EventConsumer) -> None:
    tasks = [t for tasks in consumer._tasks.values() for t in tasks]
    if tasks:
        await asyncio.wait(tasks)


async def test_a_dlq_write_that_fails_a_few_times_is_retried_and_the_lane_goes_on(
    made: list[EventConsumer],
) -> None:
    sent = InMemoryPublisher()
    dlq = FlakyPublisher(sent)
    dlq.fail_next(2)
    handler = Handler()
    consumer = consumer_of(made, handler, dlq, retries=2)
    for offset, reason in enumerate(["a", "poison", "b"]):
        consumer._dispatch(TP, record(offset, b"k", reason))
    await settled(consumer)
    assert handler.handled == ["a", "b"]
    assert [r.topic for r in sent.sent] == [f"{TOPIC}.dlq"]
    headers = dict(sent.sent[0].headers)
    assert headers["keel-dlq-reason"] == b"rejected: cannot be handled"
    assert headers["keel-dlq-offset"] == b"1"
    assert headers["h"] == b"v"
    assert consumer._progress[TP].commit_point() == (3, "")
    assert not consumer._stopping.is_set()


async def test_a_dlq_write_that_never_lands_stops_the_loop_without_passing_the_record(
    made: list[EventConsumer],
) -> None:
    dlq = FlakyPublisher()
    dlq.fail_next(100)
    handler = Handler()
    consumer = consumer_of(made, handler, dlq, retries=2)
    consumer._dispatch(TP, record(0, b"k", "a"))
    consumer._dispatch(TP, record(1, b"k", "poison"))
    consumer._dispatch(TP, record(2, b"k", "after"))  # same key: must wait for the restart
    consumer._dispatch(TP, record(3, b"other", "b"))
    await settled(consumer)
    assert dlq.failed == 3, "tried once and retried twice"
    assert "after" not in handler.handled
    # A restart reads the record again, and the later one of its key; not "b" (handled).
    assert consumer._progress[TP].commit_point() == (4, "keel.pending=1,2")
    assert consumer._stopping.is_set()
    with pytest.raises(DeadLetterFailed, match=r"keel.tasks\[0\]@1"):
        await consumer.run()  # the runtime's supervisor stops the service on this
