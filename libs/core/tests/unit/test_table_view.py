"""The table's local view shows only acknowledged writes and never goes back in time.

The follower is driven by hand (``_apply`` is what it calls for each record it reads), so the
interleaving that lost a plan's node result under load is reproduced exactly: an older record
of the key arrives while a newer write of ours is still unacknowledged. A write the broker
refused never shows (a phantom would be answered from memory and never written).
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
from keel_core.testing import FlakyPublisher


class HeldProducer:
    """``send_raw`` answers only when the test lets it, with increasing offsets; with
    ``refuse`` set, the next send fails instead (the broker did not acknowledge)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.sent: list[bytes | None] = []
        self.refuse: Exception | None = None

    async def send_raw(self, topic: str, value: bytes | None, key: Any, headers: Any) -> int:
        self.sent.append(value)
        await self.release.wait()
        if self.refuse is not None:
            refused, self.refuse = self.refuse, None
            raise refused
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
    assert reason(table, "k") == "v1", "a write shows only once the broker acknowledged it"

    table._apply(b"k", first, 0)  # the follower catches up with v1 while v2 is in flight
    assert reason(table, "k") == "v1"

    producer.release.set()
    await second
    assert reason(table, "k") == "v2"
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
    producer.release.set()
    await deleting
    assert table.get("k") is None
    table._apply(b"k", producer.sent[0], 0)  # the follower, lagging, reads v1 again
    assert table.get("k") is None


async def test_a_refused_write_leaves_the_previous_value(tables: list[CompactedTable]) -> None:
    producer = HeldProducer()
    producer.release.set()
    table = new_table(tables, producer)
    await table.put("k", TaskCancelRequested(reason="v1"))
    producer.refuse = ConnectionError("broker away")
    with pytest.raises(ConnectionError):
        await table.put("k", TaskCancelRequested(reason="v2"))
    assert reason(table, "k") == "v1", "a refused write never shows"
    producer.refuse = ConnectionError("broker away")
    with pytest.raises(ConnectionError):
        await table.put("new", TaskCancelRequested(reason="phantom"))
    assert table.get("new") is None
    assert table.keys() == ["k"]


async def test_our_late_acknowledgement_does_not_replace_a_newer_record(
    tables: list[CompactedTable],
) -> None:
    producer = HeldProducer()
    table = new_table(tables, producer)
    ours = asyncio.create_task(table.put("k", TaskCancelRequested(reason="ours")))
    await asyncio.sleep(0)
    theirs = Envelope.wrap(TaskCancelRequested(reason="theirs"), source="other", session_id="k")
    table._apply(b"k", theirs.to_bytes(), 3)  # another writer's, newer than ours (offset 0)
    producer.release.set()
    await ours
    assert reason(table, "k") == "theirs"


async def test_a_queued_write_shows_on_its_acknowledgement_and_a_failed_one_never(
    tables: list[CompactedTable],
) -> None:
    publisher = FlakyPublisher()
    table = CompactedTable(KafkaSettings(), "t", publisher, "test")
    tables.append(table)
    await table.put("k", TaskCancelRequested(reason="v1"), wait=False)
    await table.flush()
    await asyncio.sleep(0)  # the acknowledgement's callback
    assert reason(table, "k") == "v1"
    publisher.fail_next()
    await table.put("k", TaskCancelRequested(reason="v2"), wait=False)
    await asyncio.sleep(0)
    assert reason(table, "k") == "v1"
    assert table._unacked == {}
    await table.put("k", TaskCancelRequested(reason="v3"), wait=False)
    await asyncio.sleep(0)
    assert reason(table, "k") == "v3"
