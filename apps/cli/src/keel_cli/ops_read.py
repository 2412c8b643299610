"""Read a whole topic as it stands now, without joining a consumer group: what the operator
commands (audit verify, dlq, result) inspect."""

from __future__ import annotations

from keel_core.bus import reader
from keel_core.bus.reader import Record
from keel_core.settings import KafkaSettings

__all__ = ["Record", "parse_location", "read_topic"]


async def read_topic(settings: KafkaSettings, topic: str) -> list[Record]:
    """Every record from the beginning up to the end offsets seen at the start, partition by
    partition (offset order within a partition, which is the order that matters)."""
    return await reader.read_topic(settings, topic, "cli")


def parse_location(text: str) -> tuple[int, int]:
    """``<partition>:<offset>`` as printed by the list commands."""
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"expected <partition>:<offset>, got {text!r}")
    return int(partition), int(offset)
