"""Read a whole topic as it stands now, without joining a consumer group: what the operator
commands (audit verify, dlq, result) inspect."""

from __future__ import annotations

from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord

from keel_cli.follow import partitions_of
from keel_core.bus.connect import start_with_retry
from keel_core.errors import NotFound
from keel_core.settings import KafkaSettings

Record: TypeAlias = "ConsumerRecord[bytes, bytes]"


async def read_topic(settings: KafkaSettings, topic: str) -> list[Record]:
    """Every record from the beginning up to the end offsets seen at the start, partition by
    partition (offset order within a partition, which is the order that matters)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id_prefix}-cli",
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    await start_with_retry(consumer.start, settings)
    try:
        partitions = await partitions_of(consumer, [topic])
        if not partitions:
            raise NotFound(f"topic {topic} does not exist")
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        out: list[Record] = []
        for tp in partitions:
            # Transaction markers take offsets too, so stop on position, not on record count.
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                out += [r for r in batch.get(tp, []) if r.offset < ends[tp]]
        return out
    finally:
        await consumer.stop()


def parse_location(text: str) -> tuple[int, int]:
    """``<partition>:<offset>`` as printed by the list commands."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"expected <partition>:<offset>, got {text!r}")
    return int(partition), int(offset)
