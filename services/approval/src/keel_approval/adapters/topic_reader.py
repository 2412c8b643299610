"""Read a topic from the beginning to the end it had when reading started, without a group.

Used at start to rebuild the book; the same pattern as ``keel_core.bus.table.CompactedTable``
(all partitions, no offsets committed), minus the following.
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from keel_core.bus.connect import start_with_retry
from keel_core.errors import ConfigError
from keel_core.events import Envelope
from keel_core.settings import KafkaSettings

log = logging.getLogger(__name__)


async def read_to_end(settings: KafkaSettings, topic: str, client_id: str) -> list[Envelope]:
    """Every decodable envelope on ``topic`` now, in order within each partition."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id_prefix}-{client_id}",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await start_with_retry(consumer.start, settings)
    try:
        partitions = await _partitions(consumer, topic)
        if not partitions:
            raise ConfigError(f"topic {topic} does not exist")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[Envelope] = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    if record.value is None:
                        continue
                    try:
                        out.append(Envelope.from_bytes(record.value))
                    except ValueError as exc:
                        log.warning("skipping undecodable record %s@%d: %s", tp, record.offset, exc)
        return out
    finally:
        await consumer.stop()


async def _partitions(
    consumer: AIOKafkaConsumer, topic: str, attempts: int = 20
) -> list[TopicPartition]:
    """A topic created a moment ago may take a few metadata refreshes to show up."""
    for _ in range(attempts):
        cluster = await consumer._client.fetch_all_metadata()
        found = sorted(cluster.partitions_for_topic(topic) or ())
        if found:
            return [TopicPartition(topic, p) for p in found]
        await asyncio.sleep(0.25)
    return []
