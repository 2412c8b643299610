"""The compacted-topic view on the real broker: writes, tombstones, other writers, reload."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from keel_contracts.events import TaskCancelRequested
from keel_contracts.topics import TopicSpec
from keel_core.bus import EventProducer, ensure_topics
from keel_core.bus.table import CompactedTable
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.kafka


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(kafka, "test")
    await p.start()
    yield p
    await p.stop()


async def test_a_table_sees_its_own_and_others_writes_and_reloads(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    topic = f"test.table.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, cleanup="compact", retention_ms=-1)])
    first = CompactedTable(kafka, topic, producer, "a")
    second = CompactedTable(kafka, topic, producer, "b")
    await first.start()
    await second.start()
    try:
        await first.put("k1", TaskCancelRequested(reason="one"))
        await first.put("k1", TaskCancelRequested(reason="two"))
        await first.put("k2", TaskCancelRequested(reason="gone soon"))
        await first.delete("k2")
        got = first.get("k1")
        assert got is not None
        assert got.parse(TaskCancelRequested).reason == "two"
        async with asyncio.timeout(10):
            while second.get("k1") is None or second.get("k2") is not None:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        seen = second.get("k1")
        assert seen is not None
        assert seen.parse(TaskCancelRequested).reason == "two"
    finally:
        await first.stop()
        await second.stop()
    reloaded = CompactedTable(kafka, topic, producer, "c")
    await reloaded.start()
    try:
        assert reloaded.keys() == ["k1"]
    finally:
        await reloaded.stop()
