"""What trust costs per operation: signing and verifying an approval decision, signing and
verifying an audit record (the envelope included), and the tool ledger's HMAC — each on the
record Keel really writes, measured in-process (no broker: the bus costs are in e2e_overhead).

    python bench/trust_costs.py [--n 5000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from keel_contracts.approvals import arguments_hash, sign_event, signature_problem
from keel_contracts.canonical import canonical_json
from keel_contracts.events import ApprovalDecided, AuditRecord, Envelope
from keel_core import trust
from keel_core.audit import signed_bytes, verify_signature


def timed(label: str, n: int, run: Callable[[], object]) -> None:
    for _ in range(min(n, 200)):  # warm-up
        run()
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        run()
        samples.append((time.perf_counter_ns() - started) / 1000)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99) - 1]
    print(f"  {label:<44} p50 {statistics.median(samples):7.1f} µs   p99 {p99:7.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    n = parser.parse_args().n
    material = trust.TrustMaterial(trust.generate(Path(tempfile.mkdtemp()) / "trust"))

    signer, verifier = material.approval_signer(), material.approval_verifier()
    arguments = {"to": "bob@example.com", "subject": "build", "body": "The build is green."}
    decision = ApprovalDecided(
        approval_id="0123456789abcdef-" + "f" * 32,
        outcome="approved",
        reviewer="alice",
        session_id="3f2c9d7e5b8a4c1f9e2d7b6a5c4d3e2f",
        tenant="acme",
        agent_id="agent",
        tool_name="send_email",
        idempotency_key="3f2c9d7e5b8a4c1f9e2d7b6a5c4d3e2f:3:0",
        arguments_hash=arguments_hash(arguments),
        expires_at="2026-12-07T00:00:00+00:00",
    )
    signed = sign_event(decision, signer)
    print(f"trust costs, {n} runs each (Ed25519 via cryptography, HMAC-SHA256)")
    timed("approval decision: sign", n, lambda: sign_event(decision, signer))
    timed("approval decision: verify", n, lambda: signature_problem(signed, verifier))

    audit_signer = material.audit_signer("tool-gateway")
    audit_verifier = material.audit_verifiers()["tool-gateway"]
    record = AuditRecord(
        producer="tool-gateway@run",
        sequence=41,
        action="tool.execute",
        actor="agent",
        subject="calculator",
        details={"status": "ok", "idempotency_key": "s:3:0", "arguments": {"expression": "2+2"}},
        prev_hash="a" * 64,
        hash="b" * 64,
    )
    envelope = Envelope.wrap(record, source="tool-gateway", session_id="s")

    def sign_audit() -> Envelope:
        data = {**envelope.data, "signature": audit_signer.sign(signed_bytes(envelope))}
        return envelope.model_copy(update={"data": data})

    signed_envelope = sign_audit()
    timed("audit record: sign (record + envelope)", n, sign_audit)
    timed("audit record: verify", n, lambda: verify_signature(signed_envelope, audit_verifier))

    mac = material.ledger_mac()
    ledger_record = canonical_json(
        {"key": "s:3:0", "tool": "calculator", "status": "ok", "output": "4", "tenant": "acme"}
    ).encode()
    tag = mac.mac(ledger_record)
    timed("ledger record: HMAC", n, lambda: mac.mac(ledger_record))
    timed("ledger record: HMAC verify", n, lambda: mac.verify(ledger_record, tag))


if __name__ == "__main__":
    main()
