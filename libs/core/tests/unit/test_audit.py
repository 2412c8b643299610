import asyncio
from pathlib import Path

import pytest

from keel_contracts.events import AuditChainHead, AuditRecord
from keel_contracts.topics import AUDIT, AUDIT_HEADS
from keel_core import trust
from keel_core.audit import (
    GENESIS,
    AuditEmitter,
    envelope_digest,
    latest_head,
    run_producer_id,
    verify_chain,
    verify_signature,
)
from keel_core.runtime import ServiceRuntime
from keel_core.settings import ServiceSettings
from keel_core.testing import FlakyPublisher, in_memory_audit
from keel_core.trust import TrustMaterial, TrustSettings, Verifier


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


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TrustMaterial:
    return TrustMaterial(trust.generate(Path(tmp_path_factory.mktemp("trust"))))


async def test_records_are_signed_over_the_record_and_its_envelope(
    material: TrustMaterial,
) -> None:
    audit, published = in_memory_audit("policy", signer=material.audit_signer("policy"))
    audit.start()
    await audit.record("policy.decision", actor="a", subject="s", session_id="sess-1")
    await audit.close()
    (envelope,) = published.envelopes(AUDIT)
    record = envelope.parse(AuditRecord)
    assert record.identity == "policy"
    assert record.envelope_digest == envelope_digest(envelope)
    verifier = material.audit_verifiers()["policy"]
    assert verify_signature(envelope, verifier)
    assert not verify_signature(envelope.model_copy(update={"session_id": "sess-2"}), verifier)
    edited = {**envelope.data, "actor": "mallory"}
    assert not verify_signature(envelope.model_copy(update={"data": edited}), verifier)
    assert not verify_signature(envelope, material.audit_verifiers()["tool-gateway"])


async def test_close_writes_a_signed_head_of_the_last_acknowledged_record(
    material: TrustMaterial,
) -> None:
    audit, published = in_memory_audit("policy", signer=material.audit_signer("policy"))
    audit.start()
    for i in range(3):
        await audit.record("x", actor="a", subject=str(i))
    await audit.close()
    (head_envelope,) = published.envelopes(AUDIT_HEADS)
    head = head_envelope.parse(AuditChainHead)
    last = published.audit_records()[-1]
    assert (head.identity, head.producer, head.sequence, head.hash) == (
        "policy",
        "policy@test",
        2,
        last.hash,
    )
    assert published.sent[-1].key == b"policy"
    assert verify_signature(head_envelope, material.audit_verifiers()["policy"])
    found = latest_head(published.envelopes(AUDIT_HEADS), "policy", audit_verifier(material))
    assert found == head


def audit_verifier(material: TrustMaterial) -> Verifier:
    return material.audit_verifiers()["policy"]


async def test_a_head_signed_by_another_key_is_not_linked_to(material: TrustMaterial) -> None:
    forger, published = in_memory_audit("policy", signer=material.audit_signer("memory"))
    forger.start()
    await forger.record("x", actor="a", subject="s")
    await forger.close()
    heads = published.envelopes(AUDIT_HEADS)
    assert latest_head(heads, "policy", audit_verifier(material)) is None


async def test_a_new_run_links_its_first_record_to_the_previous_head() -> None:
    first, first_sent = in_memory_audit("svc", producer_id=run_producer_id("svc"))
    first.start()
    await first.record("x", actor="a", subject="s")
    await first.close()
    head = first_sent.envelopes(AUDIT_HEADS)[0].parse(AuditChainHead)
    second, second_sent = in_memory_audit("svc", producer_id=run_producer_id("svc"))
    assert second.producer_id != first.producer_id
    second.link(head)
    second.start()
    await second.record("x", actor="a", subject="s")
    await second.close()
    (linked,) = second_sent.audit_records()
    assert (linked.sequence, linked.prev_hash, linked.prev_producer) == (
        0,
        first_sent.audit_records()[0].hash,
        first.producer_id,
    )
    assert verify_chain([*first_sent.audit_records(), linked]) is None


async def test_an_async_emitter_knows_when_the_bus_refuses_writes() -> None:
    flaky = FlakyPublisher()
    audit = AuditEmitter(flaky, "svc@1", source="svc", wait_for_ack=False)
    audit.start()
    flaky.fail_next(1, topic=AUDIT)
    await audit.record("x", actor="a", subject="refused")
    await flaky.flush()
    await audit.close()
    assert not audit.writable
    audit.start()
    await audit.record("x", actor="a", subject="accepted")
    await audit.close()
    assert audit.writable


def test_two_runs_in_one_host_and_pid_get_different_producer_ids() -> None:
    """A container restart has the same host name and pid 1: the id must not repeat."""
    settings = ServiceSettings(trust=TrustSettings(insecure_dev=True))
    ids = {ServiceRuntime("policy", settings).producer_id for _ in range(2)}
    assert len(ids) == 2
    assert all(i.startswith("policy@") for i in ids)


async def test_a_record_too_large_for_the_broker_keeps_its_size_and_hash_instead() -> None:
    """Whatever a service audits (a megabyte of arguments, a megabyte 'tool name'), the record
    stays far below the broker's 1 MiB limit — the in-memory bus refuses larger ones as the
    producer would, and a refused record would fail the call it audits."""
    audit, published = in_memory_audit("svc")
    audit.start()
    await audit.record(
        "tool.execute", actor="a" * 2_000_000, subject="t", details={"arguments": "x" * 2_000_000}
    )
    await audit.record("tool.execute", actor="a", subject="t", details={"small": 1})
    await audit.close()
    big, small = published.audit_records()
    assert big.details["_omitted"] == "too large to keep"
    assert big.details["chars"] > 2_000_000
    assert big.actor.endswith("… [2000000 characters]")
    assert len(big.actor) < 1_100
    assert small.details == {"small": 1}
    assert verify_chain([big, small]) is None
