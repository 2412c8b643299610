"""Pipelined writes of a burst to one partition share a request (ADR 0016), on the real broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from keel_contracts.events import Envelope, TaskSubmitted
from keel_contracts.topics import TopicSpec
from keel_core.bus import EventProducer, ensure_topics
from keel_core.bus.producer import MAX_BATCH_BYTES
from keel_core.settings import KafkaSettings

pytestmark = pytest.mark.kafka

# A burst like 50 sessions' checkpoints landing on one partition: well over aiokafka's default
# batch (16 KiB), under ours.
RECORD_BYTES = 8 * 1024
BURST = 40


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(kafka, "test-batching")
    await p.start()
    yield p
    await p.stop()


def record(i: int) -> Envelope:
    task = TaskSubmitted(goal=f"{i}: " + "x" * RECORD_BYTES)
    return Envelope.wrap(task, source="test", session_id="one-key")


async def test_a_burst_to_one_partition_is_queued_without_waiting_for_the_broker(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    """``enqueue`` must not wait for a round trip: with 16 KiB batches it waited, behind a full
    batch, until that batch was sent, and the third batch until the first was acknowledged —
    so the first records of the burst were acknowledged before the last was even queued."""
    assert BURST * RECORD_BYTES < MAX_BATCH_BYTES
    topic = f"test.{uuid.uuid4().hex[:12]}"
    await ensure_topics(kafka, [TopicSpec(topic)])
    await producer.publish(topic, record(-1))  # metadata known: enqueue needs no round trip

    acks: list[asyncio.Future[Any]] = []
    for i in range(BURST):
        acks.append(await producer.enqueue(topic, record(i)))
        assert not any(ack.done() for ack in acks), f"record {i} waited for an acknowledgement"

    await producer.flush()
    offsets = [ack.result().offset for ack in acks]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == BURST
