"""Read a topic as it stands now, without joining a consumer group.

One implementation for everything that needs a topic's current contents: loading a compacted
table, rebuilding the approval book, and the operator's audit and DLQ commands.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from keel_contracts.errors import ConfigError
from keel_core.bus.connect import client_options, start_with_retry
from keel_core.settings import KafkaSettings

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, attempts: int = 20
) -> list[TopicPartition]:
    """The topic's partitions from fresh cluster metadata (a consumer that assigns partitions
    itself has none for topics it never subscribed to); a topic created a moment ago may take
    a few refreshes to show up, so ask again for a while before answering with none."""
    for _ in range(attempts):
        cluster = await consumer._client.fetch_all_metadata()
        found = sorted(cluster.partitions_for_topic(topic) or ())
        if found:
            return [TopicPartition(topic, p) for p in found]
        await asyncio.sleep(0.25)
    return []


async def read_partitions(
    consumer: AIOKafkaConsumer, topics: str | list[str]
) -> tuple[list[Record], dict[TopicPartition, int]]:
    """Every record from the beginning to the end offsets seen when reading started, in offset
    order within each partition, and those end offsets (where a follower continues)."""
    partitions: list[TopicPartition] = []
    for topic in [topics] if isinstance(topics, str) else topics:
        found = await topic_partitions(consumer, topic)
        if not found:
            raise ConfigError(f"topic {topic} does not exist")
        partitions += found
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
    out: list[Record] = []
    for tp in partitions:
        # Transaction markers take offsets too, so stop on position, not on record count.
        while await consumer.position(tp) < ends[tp]:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            out += [r for r in batch.get(tp, []) if r.offset < ends[tp]]
    return out, ends


async def read_topic(settings: KafkaSettings, topic: str, client_id: str) -> list[Record]:
    """``read_partitions`` with a consumer of its own."""
    consumer = _consumer(settings, client_id)
    await start_with_retry(consumer.start, settings)
    try:
        records, _ends = await read_partitions(consumer, topic)
        return records
    finally:
        await consumer.stop()


async def read_key(settings: KafkaSettings, topic: str, key: str, client_id: str) -> list[Record]:
    """The records of one key as the topic holds them now, in order: only the partition the
    default partitioner puts the key on is read (every Keel producer keys that way). A topic
    that does not exist holds nothing."""
    consumer = _consumer(settings, client_id)
    await start_with_retry(consumer.start, settings)
    try:
        partitions = await topic_partitions(consumer, topic, attempts=1)
        if not partitions:
            return []
        numbers = [tp.partition for tp in partitions]
        tp = TopicPartition(topic, DefaultPartitioner()(key.encode(), numbers, numbers))
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found: list[Record] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            found += [r for r in batch.get(tp, []) if r.key == key.encode() and r.offset < end]
        return found
    finally:
        await consumer.stop()


def _consumer(settings: KafkaSettings, client_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        **client_options(settings),
        client_id=f"{settings.client_id_prefix}-{client_id}",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
