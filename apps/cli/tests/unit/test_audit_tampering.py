"""Every kind of audit tampering is reported by the verifier, all of them in one pass: signed
records of two runs of one identity (a restart), their chain heads, and an attacker who can
write anything to the audit topic but holds no signing key."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from keel_cli.ops_audit import (
    CUT_TAIL,
    EDITED,
    ENVELOPE,
    FABRICATED,
    FORGED_HEAD,
    MISSING_RUN,
    REHASHED,
    UNSIGNED,
    ChainReport,
    audit_verify,
    print_report,
    verify_records,
)
from keel_cli.ops_read import Record
from keel_contracts.topics import AUDIT, AUDIT_HEADS
from keel_core import trust
from keel_core.settings import KafkaSettings
from keel_core.testing.audit import AuditRun, audit_run, edit, edit_envelope, rehash_from
from keel_core.trust import TrustMaterial, TrustSettings, Verifier

IDENTITY = "tool-gateway"


def as_records(values: list[bytes], partition: int = 0, topic: str = AUDIT) -> list[Record]:
    return [
        ConsumerRecord(topic, partition, offset, 0, 0, b"k", value, None, 1, len(value), [])
        for offset, value in enumerate(values)
    ]


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> TrustMaterial:
    return TrustMaterial(trust.generate(Path(tmp_path_factory.mktemp("trust"))))


@pytest.fixture
def verifiers(material: TrustMaterial) -> dict[str, Verifier]:
    return material.audit_verifiers()


async def two_runs(material: TrustMaterial) -> tuple[AuditRun, AuditRun]:
    signer = material.audit_signer(IDENTITY)
    first = await audit_run(IDENTITY, 4, signer=signer, producer_id=f"{IDENTITY}@run1")
    second = await audit_run(
        IDENTITY, 3, signer=signer, producer_id=f"{IDENTITY}@run2", after=first
    )
    return first, second


def verify(
    first: list[bytes], second: list[bytes], heads: list[bytes], verifiers: dict[str, Verifier]
) -> ChainReport:
    return verify_records(
        as_records(first, 0) + as_records(second, 1),
        as_records(heads, 0, AUDIT_HEADS),
        verifiers,
        AUDIT_HEADS,
    )


async def test_a_restart_links_to_the_previous_run_and_verifies_clean(
    material: TrustMaterial, verifiers: dict[str, Verifier]
) -> None:
    first, second = await two_runs(material)
    report = verify(first.records, second.records, first.heads + second.heads, verifiers)
    assert report.breaks == []
    assert report.counts == {f"{IDENTITY}@run1": 4, f"{IDENTITY}@run2": 3}
    assert report.signatures_checked


async def test_a_cut_tail_no_longer_reaches_its_signed_head(
    material: TrustMaterial, verifiers: dict[str, Verifier]
) -> None:
    first, second = await two_runs(material)
    report = verify(first.records, second.records[:1], first.heads + second.heads, verifiers)
    assert [(b.kind, b.producer) for b in report.breaks] == [(CUT_TAIL, f"{IDENTITY}@run2")]
    assert "ends at sequence 0 but its signed head says 2" in report.breaks[0].problem


async def test_a_removed_run_is_missing_once(
    material: TrustMaterial, verifiers: dict[str, Verifier]
) -> None:
    first, second = await two_runs(material)
    report = verify([], second.records, first.heads + second.heads, verifiers)
    assert [(b.kind, b.producer) for b in report.breaks] == [(MISSING_RUN, f"{IDENTITY}@run2")]
    assert f"run {IDENTITY}@run1" in report.breaks[0].problem


async def test_an_edit_rehashed_to_the_end_fails_every_signature(
    material: TrustMaterial, verifiers: dict[str, Verifier]
) -> None:
    first, second = await two_runs(material)
    tampered = rehash_from(second.records, 1, {"actor": "mallory"})
    report = verify(first.records, tampered, first.heads + second.heads, verifiers)
    assert [(b.kind, b.sequence) for b in report.breaks] == [
        (REHASHED, 1),
        (REHASHED, 2),
        (REHASHED, 2),  # the signed head names the original record 2
    ]


async def test_an_edited_record_and_an_edited_envelope_are_told_apart(
    material: TrustMaterial, verifiers: dict[str, Verifier]
) -> None:
    first, second = await two_runs(material)
    records = list(first.records)
    records[1] = edit(records[1], {"subject": "something else"})
    records[2] = edit_envelope(records[2], {"session_id": "another-session"})
    report = verify(records, second.records, first.heads + second.heads, verifiers)
    assert [(b.kind, b.sequence) for b in report.breaks] == [(EDITED, 1), (ENVELOPE, 2)]


async def test_fabricated_producers_and_forged_heads_are_reported(
    material: TrustMaterial, verifiers: dict[str, Verifier]
) -> None:
    first, second = await two_runs(material)
    ghost = await audit_run("ghost", 1, signer=None, producer_id="ghost@1")
    unsigned = await audit_run(IDENTITY, 1, signer=None, producer_id=f"{IDENTITY}@evil")
    forged_head = await audit_run(
        IDENTITY, 1, signer=material.audit_signer("policy"), producer_id=f"{IDENTITY}@forger"
    )
    report = verify_records(
        as_records(first.records) + as_records(ghost.records + unsigned.records, 1),
        as_records(forged_head.heads, 0, AUDIT_HEADS),
        verifiers,
        AUDIT_HEADS,
    )
    assert [b.kind for b in report.breaks] == [FABRICATED, UNSIGNED, FORGED_HEAD]


async def test_every_kind_is_reported_in_one_pass_with_a_summary(
    material: TrustMaterial, verifiers: dict[str, Verifier]
) -> None:
    first, second = await two_runs(material)
    policy = await audit_run(
        "policy", 3, signer=material.audit_signer("policy"), producer_id="policy@p1"
    )
    ghost = await audit_run("ghost", 1, signer=None, producer_id="ghost@1")
    records = list(first.records)
    records[0] = edit(records[0], {"subject": "x"})
    records[1] = edit_envelope(records[1], {"source": "mallory"})
    tampered = rehash_from(second.records, 2, {"actor": "mallory"})
    report = verify_records(
        as_records(records)
        + as_records(tampered, 1)
        + as_records(policy.records[:1], 2)
        + as_records(ghost.records, 3),
        as_records(first.heads + second.heads + policy.heads, 0, AUDIT_HEADS),
        verifiers,
        AUDIT_HEADS,
    )
    assert report.summary() == {
        EDITED: 1,
        ENVELOPE: 1,
        REHASHED: 2,
        CUT_TAIL: 1,
        FABRICATED: 1,
    }


async def test_without_trust_material_chains_are_checked_and_signatures_are_not(
    material: TrustMaterial,
) -> None:
    first, second = await two_runs(material)
    report = verify_records(as_records(first.records) + as_records(second.records, 1))
    assert report.breaks == []
    assert not report.signatures_checked
    tampered = rehash_from(second.records, 1, {"actor": "mallory"})
    assert verify_records(as_records(first.records) + as_records(tampered, 1)).breaks == []


async def test_the_insecure_dev_mode_says_signatures_were_not_checked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = await audit_run("policy", 2, signer=None, producer_id="policy@dev")
    print_report(verify_records(as_records(run.records)))
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary == (
        "2 records from 1 producers; hash chains intact; signatures NOT checked "
        "(no trust material: insecure dev mode; 2 of 2 records unsigned)"
    )


async def test_verify_without_any_trust_setting_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kafka = KafkaSettings(bootstrap="127.0.0.1:1")
    assert await audit_verify(kafka, AUDIT, TrustSettings(dir=None, insecure_dev=False)) == 2
    assert "no trust material" in capsys.readouterr().out
