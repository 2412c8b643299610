"""The table's local view never goes back in time while its own write waits for the broker.

The follower is driven by hand (``_apply`` is what it calls for each record it reads), so the
interleaving that lost a plan's node result under load is reproduced exactly: an older record
of the key arrives while a newer write of ours is still unacknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from keel_contracts.events import Envelope, TaskCancelRequested
from keel_core.bus.producer import EventProducer
from keel_core.bus.table import CompactedTable
from keel_core.settings import KafkaSettings


class HeldProducer:
    """``send_raw`` answers only when the test lets it, with increasing offsets."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[bytes | None] = []

    async def send_raw(self, topic: str, value: bytes | None, key: Any, headers: Any) -> int:
        self.sent.append(value)
        await self.release.wait()
        return len(self.sent) - 1


@pytest.fixture
async def tables() -> AsyncIterator[list[CompactedTable]]:
    made: list[CompactedTable] = []
    yield made
    for table in made:
        await table.stop()


def new_table(tables: list[CompactedTable], producer: HeldProducer) -> CompactedTable:
    table = CompactedTable(KafkaSettings(), "t", cast(EventProducer, producer), "test")
    tables.append(table)
    return table


def reason(table: CompactedTable, key: str) -> str | None:
    envelope = table.get(key)
    return None if envelope is None else envelope.parse(TaskCancelRequested).reason


async def test_an_older_record_read_while_a_write_is_unacknowledged_is_not_applied(
    tables: list[CompactedTable],
) -> None:
    producer = HeldProducer()
    producer.release.set()
    table = new_table(tables, producer)
    await table.put("k", TaskCancelRequested(reason="v1"))
    first = producer.sent[0]

    producer.release.clear()
    second = asyncio.create_task(table.put("k", TaskCancelRequested(reason="v2")))
    await asyncio.sleep(0)
    assert reason(table, "k") == "v2", "a process reads its own write at once"

    table._apply(b"k", first, 0)  # the follower catches up with v1 while v2 is in flight
    assert reason(table, "k") == "v2"

    producer.release.set()
    await second
    table._apply(b"k", first, 0)
    assert reason(table, "k") == "v2", "records older than our last write stay ignored"
    table._apply(b"k", producer.sent[1], 1)
    assert reason(table, "k") == "v2"


async def test_a_newer_record_of_another_writer_is_applied_once_ours_are_acknowledged(
    tables: list[CompactedTable],
) -> None:
    producer = HeldProducer()
    producer.release.set()
    table = new_table(tables, producer)
    await table.put("k", TaskCancelRequested(reason="ours"))
    newer = TaskCancelRequested(reason="theirs")
    record = Envelope.wrap(newer, source="other", session_id="k").to_bytes()
    table._apply(b"k", record, 5)
    assert reason(table, "k") == "theirs"


async def test_a_delete_in_flight_is_not_undone_by_an_older_record(
    tables: list[CompactedTable],
) -> None:
    producer = HeldProducer()
    producer.release.set()
    table = new_table(tables, producer)
    await table.put("k", TaskCancelRequested(reason="v1"))
    producer.release.clear()
    deleting = asyncio.create_task(table.delete("k"))
    await asyncio.sleep(0)
    table._apply(b"k", producer.sent[0], 0)
    assert table.get("k") is None
    producer.release.set()
    await deleting
    assert table.get("k") is None
