"""Audit runs made in memory and the edits an attacker with write access to the bus would make:
what the verifier's tests (unit, and on the real broker) tamper with."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from keel_contracts.events import AuditChainHead, Envelope
from keel_contracts.topics import AUDIT, AUDIT_HEADS
from keel_core.audit import record_hash
from keel_core.testing.publisher import in_memory_audit
from keel_core.trust import Signer


@dataclass(frozen=True)
class AuditRun:
    """One run's records and signed heads as they would be on ``keel.audit``/``.heads``."""

    producer: str
    records: list[bytes]
    heads: list[bytes]

    @property
    def head(self) -> AuditChainHead:
        return Envelope.from_bytes(self.heads[-1]).parse(AuditChainHead)


async def audit_run(
    identity: str,
    count: int,
    *,
    signer: Signer | None,
    producer_id: str,
    after: AuditRun | None = None,
) -> AuditRun:
    """``count`` records of one run of ``identity``, linked to the run ``after`` (a restart),
    closed so its final head is written."""
    emitter, published = in_memory_audit(identity, signer=signer, producer_id=producer_id)
    emitter.link(after.head if after is not None else None)
    emitter.start()
    for i in range(count):
        await emitter.record("tool.execution", actor="agent", subject=f"call-{i}", details={"i": i})
    await emitter.close()
    return AuditRun(
        producer_id,
        [r.value or b"" for r in published.sent if r.topic == AUDIT],
        [r.value or b"" for r in published.sent if r.topic == AUDIT_HEADS],
    )


def edit(value: bytes, change: dict[str, Any], *, rehash: bool = False) -> bytes:
    """Change fields of a record's payload; with ``rehash`` recompute its hash (what an attacker
    without the signing key can still do)."""
    envelope = json.loads(value)
    envelope["data"].update(change)
    if rehash:
        envelope["data"]["hash"] = record_hash(envelope["data"])
    return json.dumps(envelope).encode()


def rehash_from(values: list[bytes], index: int, change: dict[str, Any]) -> list[bytes]:
    """Edit record ``index`` and re-hash it and every later record of the run, re-linking each
    to its new predecessor: a chain that holds by hashes alone."""
    out = list(values[:index])
    prev = json.loads(out[-1])["data"]["hash"] if out else None
    for i, value in enumerate(values[index:]):
        fields = dict(change) if i == 0 else {}
        if prev is not None:
            fields["prev_hash"] = prev
        edited = edit(value, fields, rehash=True)
        out.append(edited)
        prev = json.loads(edited)["data"]["hash"]
    return out


def edit_envelope(value: bytes, change: dict[str, Any]) -> bytes:
    """Change the envelope's own fields (id, time, source, session_id, trace)."""
    envelope = json.loads(value)
    envelope.update(change)
    return json.dumps(envelope).encode()
