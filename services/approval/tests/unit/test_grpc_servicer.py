"""The approval servicer over real gRPC in-process, with an in-memory publisher."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.grpc_servicer import ApprovalServicer
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestIntake
from keel_contracts.events import ApprovalDecided, ApprovalRequested, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit


@dataclass
class Rig:
    stub: approval_pb2_grpc.ApprovalServiceStub
    handler: RequestHandler
    decisions: InMemoryPublisher
    audit_log: InMemoryPublisher
    registry: CollectorRegistry

    async def request(self, approval_id: str, session_id: str = "sess-1") -> None:
        event = ApprovalRequested(
            approval_id=approval_id,
            agent_id="agent-1",
            tool_name="send_email",
            arguments={"to": "all@example.com", "body": "hi"},
            idempotency_key=f"{session_id}:1:0",
            consequences="Sends one email to all@example.com.",
        )
        await self.handler.on_request(
            Envelope.wrap(event, source="agent-loop", session_id=session_id)
        )


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    audit, audit_log = in_memory_audit("approval")
    audit.start()
    registry = CollectorRegistry()
    metrics = ApprovalMetrics(registry)
    book = ApprovalBook()
    metrics.track_pending(lambda: book.pending_count)
    decisions = InMemoryPublisher()
    servicer = ApprovalServicer(book, Decider(book, decisions, audit, metrics))
    server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                servicer,
                approval_pb2_grpc.add_ApprovalServiceServicer_to_server,
                approval_pb2.DESCRIPTOR.services_by_name["ApprovalService"].full_name,
            )
        ],
        registry,
    )
    await server.start()
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Rig(
            approval_pb2_grpc.ApprovalServiceStub(channel),
            RequestHandler(RequestIntake(book, audit, metrics)),
            decisions,
            audit_log,
            registry,
        )
    await server.stop(0)
    await audit.close()


async def test_resolve_publishes_the_decision_keyed_by_session_and_audits(rig: Rig) -> None:
    await rig.request("ap-1", session_id="sess-9")
    listed = await rig.stub.List(approval_pb2.ListRequest(), timeout=5)
    assert [a.id for a in listed.approvals] == ["ap-1"]
    assert json.loads(listed.approvals[0].arguments_json) == {
        "to": "all@example.com",
        "body": "hi",
    }
    assert rig.registry.get_sample_value("keel_approval_pending") == 1

    reply = await rig.stub.Resolve(
        approval_pb2.ResolveRequest(
            id="ap-1",
            outcome=approval_pb2.OUTCOME_MODIFY,
            reviewer="alice",
            comment="only the team",
            modified_arguments_json='{"to": "team@example.com", "body": "hi"}',
        ),
        timeout=5,
    )
    assert reply.status == approval_pb2.APPROVAL_STATUS_MODIFIED
    assert reply.decided_by == "alice"
    assert json.loads(reply.modified_arguments_json)["to"] == "team@example.com"

    [sent] = [r for r in rig.decisions.sent if r.topic == APPROVAL_DECISIONS]
    assert sent.key == b"sess-9"
    envelope = rig.decisions.envelopes(APPROVAL_DECISIONS)[0]
    assert envelope.session_id == "sess-9"
    decided = envelope.parse(ApprovalDecided)
    assert decided.approval_id == "ap-1"
    assert decided.outcome == "modified"
    assert decided.reviewer == "alice"
    assert decided.modified_arguments == {"to": "team@example.com", "body": "hi"}

    actions = [(r.action, r.details.get("outcome")) for r in rig.audit_log.audit_records()]
    assert actions == [("approval.requested", None), ("approval.decided", "modified")]
    assert rig.audit_log.audit_records()[1].details["reviewer"] == "alice"
    assert rig.registry.get_sample_value("keel_approval_pending") == 0

    pending = await rig.stub.List(approval_pb2.ListRequest(), timeout=5)
    assert list(pending.approvals) == []
    everything = await rig.stub.List(approval_pb2.ListRequest(include_resolved=True), timeout=5)
    assert [a.status for a in everything.approvals] == [approval_pb2.APPROVAL_STATUS_MODIFIED]
    got = await rig.stub.Get(approval_pb2.GetRequest(id="ap-1"), timeout=5)
    assert got.comment == "only the team"


async def test_double_resolve_is_failed_precondition_and_publishes_once(rig: Rig) -> None:
    await rig.request("ap-2")
    approve = approval_pb2.ResolveRequest(
        id="ap-2", outcome=approval_pb2.OUTCOME_APPROVE, reviewer="bob"
    )
    first = await rig.stub.Resolve(approve, timeout=5)
    assert first.status == approval_pb2.APPROVAL_STATUS_APPROVED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rig.stub.Resolve(
            approval_pb2.ResolveRequest(
                id="ap-2", outcome=approval_pb2.OUTCOME_REJECT, reviewer="eve"
            ),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    decisions = rig.decisions.envelopes(APPROVAL_DECISIONS)
    assert [e.parse(ApprovalDecided).outcome for e in decisions] == ["approved"]


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (
            approval_pb2.ResolveRequest(
                id="missing", outcome=approval_pb2.OUTCOME_APPROVE, reviewer="bob"
            ),
            grpc.StatusCode.NOT_FOUND,
        ),
        (
            approval_pb2.ResolveRequest(id="ap-3", outcome=approval_pb2.OUTCOME_APPROVE),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            approval_pb2.ResolveRequest(id="ap-3", reviewer="bob"),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            approval_pb2.ResolveRequest(
                id="ap-3",
                outcome=approval_pb2.OUTCOME_MODIFY,
                reviewer="bob",
                modified_arguments_json="[1, 2]",
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (
            approval_pb2.ResolveRequest(
                id="ap-3",
                outcome=approval_pb2.OUTCOME_MODIFY,
                reviewer="bob",
                modified_arguments_json="{not json",
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        # Nested past the JSON parser's recursion limit (a fuzz finding: was INTERNAL).
        (
            approval_pb2.ResolveRequest(
                id="ap-3",
                outcome=approval_pb2.OUTCOME_MODIFY,
                reviewer="bob",
                modified_arguments_json='{"a": ' * 2000 + "1" + "}" * 2000,
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
    ],
)
async def test_bad_resolves_map_to_status_codes(
    rig: Rig, request_: approval_pb2.ResolveRequest, code: grpc.StatusCode
) -> None:
    await rig.request("ap-3")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rig.stub.Resolve(request_, timeout=5)
    assert caught.value.code() == code
    assert rig.decisions.sent == []
    got = await rig.stub.Get(approval_pb2.GetRequest(id="ap-3"), timeout=5)
    assert got.status == approval_pb2.APPROVAL_STATUS_PENDING


async def test_get_unknown_is_not_found(rig: Rig) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rig.stub.Get(approval_pb2.GetRequest(id="nope"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_failed_publish_leaves_the_request_pending(rig: Rig) -> None:
    await rig.request("ap-4")

    async def broken(*args: object, **kwargs: object) -> None:
        raise ConnectionError("broker down")

    rig.decisions.publish = broken  # type: ignore[method-assign]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await rig.stub.Resolve(
            approval_pb2.ResolveRequest(
                id="ap-4", outcome=approval_pb2.OUTCOME_APPROVE, reviewer="bob"
            ),
            timeout=5,
        )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    got = await rig.stub.Get(approval_pb2.GetRequest(id="ap-4"), timeout=5)
    assert got.status == approval_pb2.APPROVAL_STATUS_PENDING


async def test_watch_sends_pending_then_new_requests_and_decisions(rig: Rig) -> None:
    await rig.request("existing")
    stream = rig.stub.Watch(approval_pb2.WatchRequest(), timeout=10)
    first = await asyncio.wait_for(stream.read(), 5)
    assert (first.id, first.status) == ("existing", approval_pb2.APPROVAL_STATUS_PENDING)

    await rig.request("new-one")
    added = await asyncio.wait_for(stream.read(), 5)
    assert (added.id, added.status) == ("new-one", approval_pb2.APPROVAL_STATUS_PENDING)
    assert added.tool_name == "send_email"

    await rig.stub.Resolve(
        approval_pb2.ResolveRequest(
            id="new-one", outcome=approval_pb2.OUTCOME_REJECT, reviewer="carol"
        ),
        timeout=5,
    )
    decided = await asyncio.wait_for(stream.read(), 5)
    assert (decided.id, decided.status) == ("new-one", approval_pb2.APPROVAL_STATUS_REJECTED)
    stream.cancel()


async def test_get_carries_the_consequences_and_the_quorum(rig: Rig) -> None:
    await rig.request("ap-1")
    approval = await rig.stub.Get(approval_pb2.GetRequest(id="ap-1"), timeout=5)
    assert approval.consequences == "Sends one email to all@example.com."
    assert (approval.required_approvals, list(approval.approved_by)) == (1, [])
