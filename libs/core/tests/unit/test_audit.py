import asyncio

from keel_core.audit import GENESIS, verify_chain
from keel_core.testing import in_memory_audit


async def test_records_chain_by_hash_in_order() -> None:
    audit, published = in_memory_audit("svc")
    audit.start()
    await asyncio.gather(
        *(audit.record("thing.done", actor="a", subject=str(i), session_id="s") for i in range(5))
    )
    await audit.close()
    records = published.audit_records()
    assert [r.sequence for r in records] == [0, 1, 2, 3, 4]
    assert records[0].prev_hash == GENESIS
    assert all(records[i].prev_hash == records[i - 1].hash for i in range(1, 5))
    assert verify_chain(records) is None


async def test_verify_finds_the_first_tampered_record() -> None:
    audit, published = in_memory_audit("svc")
    audit.start()
    for i in range(4):
        await audit.record("x", actor="a", subject=str(i), details={"n": i})
    await audit.close()
    records = published.audit_records()
    tampered = records[2].model_copy(update={"details": {"n": 99}})
    assert verify_chain([records[0], records[1], tampered, records[3]]) == 2
    assert verify_chain([records[0], records[2], records[3]]) == 1
