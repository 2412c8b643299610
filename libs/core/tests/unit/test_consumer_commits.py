"""A long handler does not hold back its partition's commit point, and the next owner hands
only the records that were in flight to its handler again.

Driven by hand with records as aiokafka hands them over, with the commit and the group's
stored offsets captured in memory; the real broker's version is in
tests/integration/test_bus.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from keel_contracts.events import Envelope, TaskCancelRequested
from keel_core.bus.consumer import EventConsumer
from keel_core.settings import KafkaSettings
from keel_core.testing import InMemoryPublisher

TOPIC = "keel.tasks"
TP = TopicPartition(TOPIC, 0)


def record(offset: int, key: bytes, reason: str) -> ConsumerRecord[bytes, bytes]:
    envelope = Envelope.wrap(TaskCancelRequested(reason=reason), source="t", session_id="s")
    return ConsumerRecord(TOPIC, 0, offset, 0, 0, key, envelope.to_bytes(), None, 1, 1, ())


class Group:
    """The group's stored offsets, as the broker keeps them."""

    def __init__(self) -> None:
        self.offsets: dict[TopicPartition, OffsetAndMetadata] = {}

    async def commit(self, offsets: dict[TopicPartition, tuple[int, str]]) -> None:
        for tp, (offset, metadata) in offsets.items():
            self.offsets[tp] = OffsetAndMetadata(offset, metadata)

    async def fetch_committed_offsets(
        self, tps: list[TopicPartition]
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        return {tp: self.offsets[tp] for tp in tps if tp in self.offsets}

    async def close(self) -> None:
        """The consumer closes its coordinator when it stops."""


class Handler:
    """Blocks on ``long`` until released; remembers every record it was given."""

    def __init__(self) -> None:
        self.handled: list[str] = []
        self.release = asyncio.Event()
        self.seen = asyncio.Event()

    async def __call__(self, envelope: Envelope) -> None:
        reason = envelope.parse(TaskCancelRequested).reason
        self.handled.append(reason)
        self.seen.set()
        if reason == "long":
            await self.release.wait()


@pytest.fixture
async def made() -> AsyncIterator[list[EventConsumer]]:
    consumers: list[EventConsumer] = []
    yield consumers
    for consumer in consumers:
        for tasks in consumer._tasks.values():
            for task in tasks:
                task.cancel()
        await consumer._consumer.stop()


def consumer_of(
    made: list[EventConsumer], handler: Handler, group: Group, seeks: list[int]
) -> EventConsumer:
    consumer = EventConsumer(
        KafkaSettings(),
        topics=[TOPIC],
        group_id="g",
        handler=handler,
        dlq_producer=InMemoryPublisher(),
    )
    consumer._consumer.commit = group.commit
    consumer._consumer._coordinator = group
    consumer._consumer.seek = lambda tp, offset: seeks.append(offset)
    made.append(consumer)
    return consumer


async def until_handled(handler: Handler, count: int) -> None:
    async with asyncio.timeout(5):
        while len(handler.handled) < count:
            handler.seen.clear()
            await handler.seen.wait()


RECORDS = [(0, b"long", "long"), (1, b"a", "a"), (2, b"b", "b"), (3, b"long", "after-long")]


async def test_a_long_handler_does_not_make_later_records_be_redelivered(
    made: list[EventConsumer],
) -> None:
    group = Group()
    first = Handler()
    crashed = consumer_of(made, first, group, [])
    for offset, key, reason in RECORDS:
        crashed._dispatch(TP, record(offset, key, reason))
    await until_handled(first, 3)  # long (running), a, b; after-long waits in its lane
    await crashed._commit()
    assert group.offsets[TP] == OffsetAndMetadata(4, "keel.pending=0,3")

    # The process dies; the next owner of the partition takes over from that commit.
    second = Handler()
    second.release.set()
    seeks: list[int] = []
    successor = consumer_of(made, second, group, seeks)
    await successor._assigned_partitions({TP})
    assert seeks == [0], "reads from the oldest record in flight"
    for offset, key, reason in [*RECORDS, (4, b"c", "new")]:
        successor._dispatch(TP, record(offset, key, reason))
    await until_handled(second, 3)
    await asyncio.wait([t for ts in successor._tasks.values() for t in ts])
    assert sorted(second.handled) == ["after-long", "long", "new"]  # not "a" or "b" again
    assert second.handled.index("long") < second.handled.index("after-long")
    await successor._commit()
    assert group.offsets[TP] == OffsetAndMetadata(5, "")


async def test_commits_go_on_while_a_handler_runs(made: list[EventConsumer]) -> None:
    group = Group()
    handler = Handler()
    consumer = consumer_of(made, handler, group, [])
    consumer._dispatch(TP, record(0, b"long", "long"))
    await until_handled(handler, 1)
    await consumer._commit()
    consumer._dispatch(TP, record(1, b"a", "a"))
    await until_handled(handler, 2)
    await asyncio.wait(consumer._tasks[TP] - {consumer._lanes[(TOPIC, b"long")]})
    await consumer._commit()
    assert group.offsets[TP] == OffsetAndMetadata(2, "keel.pending=0")
    handler.release.set()
    await asyncio.wait(consumer._tasks[TP])
    await consumer._commit()
    assert group.offsets[TP] == OffsetAndMetadata(2, "")


async def test_a_commit_that_cannot_be_read_stops_the_consumer_without_committing(
    made: list[EventConsumer],
) -> None:
    class Broken(Group):
        async def fetch_committed_offsets(
            self, tps: list[TopicPartition]
        ) -> dict[TopicPartition, OffsetAndMetadata]:
            raise RuntimeError("coordinator gone")

    group = Broken()
    handler = Handler()
    consumer = consumer_of(made, handler, group, [])
    await consumer._assigned_partitions({TP})
    consumer._dispatch(TP, record(5, b"a", "a"))
    await consumer._commit()
    assert group.offsets == {}, "a commit now would drop what the last one listed in flight"
    assert handler.handled == []
    with pytest.raises(RuntimeError, match="coordinator gone"):
        await consumer.run()
