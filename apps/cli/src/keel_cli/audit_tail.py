"""``keel audit tail``: print the audit topic's records and check their hash chains."""

from __future__ import annotations

import json

from keel_contracts.events import AuditRecord, Envelope
from keel_contracts.topics import AUDIT
from keel_core.audit import verify_chain
from keel_core.bus.reader import read_topic
from keel_core.settings import KafkaSettings


async def read_audit(settings: KafkaSettings) -> list[tuple[Envelope, AuditRecord]]:
    """Every audit record currently on the topic, in partition order."""
    out: list[tuple[Envelope, AuditRecord]] = []
    for record in await read_topic(settings, AUDIT, "cli-audit"):
        envelope = Envelope.from_bytes(record.value or b"")
        out.append((envelope, envelope.parse(AuditRecord)))
    return out


async def audit_tail(settings: KafkaSettings, limit: int) -> int:
    records = await read_audit(settings)
    for envelope, rec in records[-limit:]:
        details = json.dumps(rec.details, ensure_ascii=False)[:120]
        print(
            f"{envelope.time:%H:%M:%S} {rec.producer:<32} {rec.action:<18} "
            f"{rec.actor:<12} {rec.subject:<14} {details}"
        )
    broken = verify_chain([rec for _, rec in records])
    print(
        f"{len(records)} records; hash chains "
        + ("intact" if broken is None else f"BROKEN at record {broken}")
    )
    return 0 if broken is None else 1
