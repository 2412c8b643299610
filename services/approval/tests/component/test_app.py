"""The approval service's real composition root on an in-memory runtime: the rebuild and the
decisions follower read the in-memory bus, the request consumer takes what is appended on
``keel.approval.requests``, and Resolve publishes, records and audits through a real gRPC
server on loopback."""

from __future__ import annotations

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.app import SERVICE, build
from keel_approval.config import Settings
from keel_contracts.events import ApprovalDecided, ApprovalRequested, AuditRecord, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_REQUESTS, AUDIT
from keel_core.grpc import insecure_channel
from keel_core.testing import InMemoryBus, InMemoryRuntime


def requested(approval_id: str, session_id: str) -> bytes:
    event = ApprovalRequested(
        approval_id=approval_id,
        agent_id="agent-1",
        tool_name="send_email",
        arguments={"to": "all@example.com"},
        idempotency_key=f"{approval_id}:0",
    )
    return Envelope.wrap(event, source="agent-loop", session_id=session_id).to_bytes()


async def test_the_built_service_takes_requests_and_publishes_decisions() -> None:
    settings = Settings(web_enabled=False)
    bus = InMemoryBus()
    bus.append(APPROVAL_REQUESTS, requested("ap-old", "s0"), "s0", [])  # before the start
    runtime = InMemoryRuntime(SERVICE, settings, bus)
    parts = build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = approval_pb2_grpc.ApprovalServiceStub(channel)
        bus.append(APPROVAL_REQUESTS, requested("ap-1", "s1"), "s1", [])
        await runtime.settle()
        listed = await stub.List(approval_pb2.ListRequest(), timeout=5)
        decided = await stub.Resolve(
            approval_pb2.ResolveRequest(
                id="ap-1", outcome=approval_pb2.OUTCOME_REJECT, reviewer="alice", comment="no"
            ),
            timeout=5,
        )
    assert sorted(a.id for a in listed.approvals) == ["ap-1", "ap-old"]
    assert decided.status == approval_pb2.APPROVAL_STATUS_REJECTED
    published = bus.parsed(APPROVAL_DECISIONS, ApprovalDecided)
    assert [(d.approval_id, d.outcome, d.reviewer) for d in published] == [
        ("ap-1", "rejected", "alice")
    ]
    assert [e.session_id for e in bus.envelopes(APPROVAL_DECISIONS)] == ["s1"]
    audited = [(r.action, r.subject) for r in bus.parsed(AUDIT, AuditRecord)]
    # The rebuilt request is not audited again; the live one is, and so is the decision.
    assert audited == [("approval.requested", "ap-1"), ("approval.decided", "ap-1")]
    assert parts.book.get("ap-1").decided_by == "alice"
    assert [a.id for a in parts.book.list()] == ["ap-old"]
    assert (
        runtime.registry.get_sample_value(
            "keel_approval_rebuilt_records", {"topic": APPROVAL_REQUESTS}
        )
        == 1.0
    )


async def test_a_poison_request_kept_on_the_topic_is_dead_lettered_and_the_service_starts() -> None:
    settings = Settings(web_enabled=False)
    bus = InMemoryBus()
    bus.append(APPROVAL_REQUESTS, requested("ap-1", "s1"), "s1", [("keel-type", b"x")])
    bus.append(APPROVAL_REQUESTS, requested("", "s2"), "s2", [])  # empty id: never valid
    bus.append(APPROVAL_REQUESTS, b"not an envelope", "s3", [])
    bus.append(APPROVAL_REQUESTS, requested("ap-4", "s4"), "s4", [])
    runtime = InMemoryRuntime(SERVICE, settings, bus)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = approval_pb2_grpc.ApprovalServiceStub(channel)
        listed = await stub.List(approval_pb2.ListRequest(), timeout=5)
    assert sorted(a.id for a in listed.approvals) == ["ap-1", "ap-4"]
    dead = bus.records(f"{APPROVAL_REQUESTS}.dlq")
    assert [r.key for r in dead] == [b"s2", b"s3"]
    poison = dict(dead[0].headers)
    assert poison["keel-dlq-reason"].startswith(b"rebuild: invalid approval request")
    assert poison["keel-dlq-topic"] == APPROVAL_REQUESTS.encode()
    assert poison["keel-dlq-offset"] == b"1"
    assert dead[0].value == bus.records(APPROVAL_REQUESTS)[1].value
    assert dict(dead[1].headers)["keel-dlq-reason"] == b"undecodable envelope"
