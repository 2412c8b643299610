"""The audit on the real broker: every kind of tampering an attacker with write access to the
audit topics can do is reported by `keel audit verify`, all of them in one run; a service
restarted on the stack continues its identity's chain and verifies clean."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from keel_cli.audit_tail import read_audit
from keel_cli.ops_audit import (
    CUT_TAIL,
    EDITED,
    ENVELOPE,
    FABRICATED,
    MISSING_RUN,
    REHASHED,
)
from keel_cli.stack import LocalStack
from keel_contracts.topics import TopicSpec, heads_of
from keel_core.bus import EventProducer
from keel_core.bus.admin import ensure_topics
from keel_core.settings import KafkaSettings
from keel_core.testing.audit import AuditRun, audit_run, edit, edit_envelope, rehash_from
from keel_core.trust import TrustMaterial
from tests.integration.chaos import restart
from tests.integration.helpers import run_task
from tests.integration.test_operator_cli import keel


def material() -> TrustMaterial:
    """The run's trust material: what the stack's services and the `keel` command read."""
    return TrustMaterial(Path(os.environ["KEEL_TRUST_DIR"]))


async def runs(identity: str, *counts: int) -> list[AuditRun]:
    """Consecutive runs of one identity, each linked to the one before (restarts)."""
    signer = material().audit_signer(identity)
    out: list[AuditRun] = []
    for n, count in enumerate(counts):
        after = out[-1] if out else None
        producer = f"{identity}@{uuid.uuid4().hex[:8]}r{n}"
        out.append(
            await audit_run(identity, count, signer=signer, producer_id=producer, after=after)
        )
    return out


@pytest.mark.kafka
async def test_every_kind_of_tampering_is_reported_in_one_verify(kafka: KafkaSettings) -> None:
    topic = f"test.audit.{uuid.uuid4().hex[:8]}"
    await ensure_topics(
        kafka,
        [TopicSpec(topic, retention_ms=-1), TopicSpec(heads_of(topic), cleanup="compact")],
    )
    gateway = await runs("tool-gateway", 4, 3, 3)
    policy = await runs("policy", 2, 3)
    ghost = await audit_run("ghost", 2, signer=None, producer_id="ghost@1")

    written: list[tuple[str, list[bytes]]] = [
        # An edited record and an edited envelope in the first run.
        (
            gateway[0].producer,
            [
                gateway[0].records[0],
                edit(gateway[0].records[1], {"subject": "something else"}),
                edit_envelope(gateway[0].records[2], {"session_id": "another-session"}),
                gateway[0].records[3],
            ],
        ),
        # The second run removed as a whole; the third edited at 1 and re-hashed to its end.
        (gateway[2].producer, rehash_from(gateway[2].records, 1, {"actor": "mallory"})),
        # The last run of policy with its tail cut.
        (policy[0].producer, policy[0].records),
        (policy[1].producer, policy[1].records[:1]),
        # A producer no identity key signs for.
        (ghost.producer, ghost.records),
    ]
    producer = EventProducer(kafka, "attacker")
    await producer.start()
    try:
        for key, values in written:
            for value in values:
                await producer.send_raw(topic, value, key, [])
        for run in [*gateway, *policy]:
            for head in run.heads:
                await producer.send_raw(heads_of(topic), head, run.head.identity, [])
    finally:
        await producer.stop()

    verified = await keel(kafka, "audit", "verify", "--topic", topic)
    out = verified.stdout
    assert verified.returncode == 1, out + verified.stderr
    summary = out.strip().splitlines()[-1]
    assert (
        f"12 records from 5 producers; 9 breaks ({CUT_TAIL}: 1, {EDITED}: 1, {ENVELOPE}: 1, "
        f"{FABRICATED}: 2, {MISSING_RUN}: 1, {REHASHED}: 3); signatures checked"
    ) in summary, out
    assert f"links to run {gateway[1].producer} of 'tool-gateway'" in out
    assert "run ends at sequence 0 but its signed head says 2 (its tail was cut)" in out
    assert "identity 'ghost' has no audit key (fabricated producer)" in out


@pytest.mark.stack
async def test_a_restarted_service_continues_its_chain_and_verifies_clean(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    await run_task(kafka, "What is 2 * 21?")
    assert await stack.stop_one("policy") == 0
    await restart(stack, "policy")
    await run_task(kafka, "What is 6 * 7?")

    records = [rec for _, rec in await read_audit(kafka) if rec.identity == "policy"]
    last_of = {rec.producer: rec.hash for rec in records}  # in order: the last one wins
    linked = [r for r in records if r.sequence == 0 and r.prev_producer in last_of]
    assert linked, "the restarted run links to the run before it"
    assert all(r.prev_hash == last_of[r.prev_producer] for r in linked)

    verified = await keel(kafka, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "hash chains intact; signatures checked" in verified.stdout
