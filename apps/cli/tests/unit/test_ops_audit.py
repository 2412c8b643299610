"""Chain verification names each broken record and what is wrong with it (unsigned chains:
the insecure dev mode; the signed ones are in test_audit_tampering.py)."""

from __future__ import annotations

import json

from aiokafka.structs import ConsumerRecord

from keel_cli.ops_audit import verify_records
from keel_cli.ops_read import Record
from keel_contracts.topics import AUDIT
from keel_core.testing import in_memory_audit


async def chained(producer: str, count: int) -> list[bytes]:
    audit, published = in_memory_audit(producer)
    audit.start()
    for i in range(count):
        await audit.record("tool.execution", actor="agent", subject=f"call-{i}", details={"i": i})
    await audit.close()
    return [r.value or b"" for r in published.sent if r.topic == AUDIT]


def as_records(values: list[bytes], partition: int = 0) -> list[Record]:
    return [
        ConsumerRecord(AUDIT, partition, offset, 0, 0, b"k", value, None, 1, len(value), [])
        for offset, value in enumerate(values)
    ]


def edit(value: bytes, change: dict[str, object]) -> bytes:
    envelope = json.loads(value)
    envelope["data"].update(change)
    return json.dumps(envelope).encode()


async def test_intact_chains_are_counted_per_producer() -> None:
    records = as_records(await chained("a", 3)) + as_records(await chained("b", 2), 1)
    report = verify_records(records)
    assert report.first_break is None
    assert report.counts == {"a@test": 3, "b@test": 2}


async def test_an_edited_record_is_found_by_its_content_hash() -> None:
    values = await chained("a", 4)
    values[2] = edit(values[2], {"actor": "mallory"})
    where = verify_records(as_records(values)).first_break
    assert where is not None
    assert (where.partition, where.offset, where.producer, where.sequence) == (0, 2, "a@test", 2)
    assert "content does not match its hash" in where.problem


async def test_a_deleted_record_is_a_missing_sequence() -> None:
    values = await chained("a", 4)
    del values[1]
    where = verify_records(as_records(values)).first_break
    assert where is not None
    assert (where.offset, where.sequence) == (1, 2)
    assert where.problem == "missing sequence 1..1"


async def test_a_forged_link_is_a_prev_hash_mismatch() -> None:
    values = await chained("a", 3)
    values[1] = edit(values[1], {"prev_hash": "f" * 64})
    where = verify_records(as_records(values)).first_break
    assert where is not None
    assert where.offset == 1
    assert where.problem.startswith("prev_hash ffffffffffff")


async def test_garbage_on_the_topic_is_a_break() -> None:
    values = [*await chained("a", 1), b"{not json"]
    where = verify_records(as_records(values)).first_break
    assert where is not None
    assert where.offset == 1
    assert where.problem.startswith("undecodable")
