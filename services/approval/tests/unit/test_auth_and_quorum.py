"""Reviewer tokens, self-approval and N-of-M quorum, over real gRPC in-process."""

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel_approval.domain.book import ApprovalBook
from keel_approval.handlers.auth import ReviewerAuth
from keel_approval.handlers.grpc_servicer import ApprovalServicer
from keel_approval.handlers.kafka_handler import RequestHandler
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_approval.usecases.intake import RequestIntake, RequestReader
from keel_contracts.events import ApprovalDecided, ApprovalRequested, ApprovalVoted, Envelope
from keel_contracts.topics import APPROVAL_DECISIONS
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit

TOKENS = {"tok-alice": "alice", "tok-bob": "bob", "tok-agent": "agent-1"}


@dataclass
class Rig:
    stub: approval_pb2_grpc.ApprovalServiceStub
    handler: RequestHandler
    decisions: InMemoryPublisher
    audit_log: InMemoryPublisher

    async def request(self, approval_id: str, tool: str = "send_email") -> None:
        event = ApprovalRequested(
            approval_id=approval_id,
            agent_id="agent-1",
            tool_name=tool,
            arguments={"to": "all@example.com"},
            idempotency_key=f"{approval_id}:0",
        )
        await self.handler.on_request(Envelope.wrap(event, source="agent-loop", session_id="s1"))

    async def resolve(
        self,
        approval_id: str,
        token: str | None,
        outcome: approval_pb2.Outcome.ValueType = approval_pb2.OUTCOME_APPROVE,
    ) -> approval_pb2.Approval:
        metadata = [("authorization", f"Bearer {token}")] if token else []
        reply: approval_pb2.Approval = await self.stub.Resolve(
            approval_pb2.ResolveRequest(
                id=approval_id, outcome=outcome, reviewer="mallory", comment="why not"
            ),
            metadata=metadata,
            timeout=5,
        )
        return reply

    def published(self) -> list[ApprovalDecided]:
        return [
            e.parse(ApprovalDecided)
            for e in self.decisions.envelopes(APPROVAL_DECISIONS)
            if e.type == ApprovalDecided.event_type
        ]

    def votes(self) -> list[ApprovalVoted]:
        return [
            e.parse(ApprovalVoted)
            for e in self.decisions.envelopes(APPROVAL_DECISIONS)
            if e.type == ApprovalVoted.event_type
        ]


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    audit, audit_log = in_memory_audit("approval")
    audit.start()
    registry = CollectorRegistry()
    metrics = ApprovalMetrics(registry)
    book = ApprovalBook()
    decisions = InMemoryPublisher()
    decider = Decider(book, decisions, audit, metrics)
    servicer = ApprovalServicer(book, decider, auth=ReviewerAuth(TOKENS))
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
    reader = RequestReader(quorum={"send_*": 2, "*": 1})
    async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield Rig(
            approval_pb2_grpc.ApprovalServiceStub(channel),
            RequestHandler(RequestIntake(book, audit, metrics), reader=reader),
            decisions,
            audit_log,
        )
    await server.stop(0)
    await audit.close()


@pytest.mark.parametrize("token", [None, "tok-wrong", ""])
async def test_resolve_without_a_valid_token_is_refused(rig: Rig, token: str | None) -> None:
    await rig.request("ap-1", tool="delete_file")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rig.resolve("ap-1", token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert rig.published() == []


async def test_the_decision_records_the_tokens_reviewer_not_the_claimed_one(rig: Rig) -> None:
    await rig.request("ap-1", tool="delete_file")
    reply = await rig.resolve("ap-1", "tok-alice", approval_pb2.OUTCOME_REJECT)
    assert reply.decided_by == "alice"
    [event] = rig.published()
    assert (event.reviewer, event.outcome, event.comment) == ("alice", "rejected", "why not")
    decided = [r for r in rig.audit_log.audit_records() if r.action == "approval.decided"]
    assert decided[0].actor == "alice"


async def test_an_agent_cannot_approve_its_own_request(rig: Rig) -> None:
    await rig.request("ap-1", tool="delete_file")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rig.resolve("ap-1", "tok-agent")
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert rig.published() == []


async def test_a_quorum_needs_distinct_reviewers_before_a_decision_is_published(rig: Rig) -> None:
    await rig.request("ap-1")  # send_email: 2 approvals
    first = await rig.resolve("ap-1", "tok-alice")
    assert first.status == approval_pb2.APPROVAL_STATUS_PENDING
    assert (first.required_approvals, list(first.approved_by)) == (2, ["alice"])
    assert rig.published() == []
    [vote] = rig.votes()  # the vote itself is published, so a restart keeps it
    assert (vote.approval_id, vote.reviewer, vote.approvals, vote.required) == (
        "ap-1",
        "alice",
        ["alice"],
        2,
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rig.resolve("ap-1", "tok-alice")
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await rig.stub.Resolve(
            approval_pb2.ResolveRequest(
                id="ap-1", outcome=approval_pb2.OUTCOME_MODIFY, modified_arguments_json="{}"
            ),
            metadata=[("authorization", "Bearer tok-bob")],
            timeout=5,
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    second = await rig.resolve("ap-1", "tok-bob")
    assert second.status == approval_pb2.APPROVAL_STATUS_APPROVED
    assert second.decided_by == "alice,bob"
    [event] = rig.published()
    assert (event.outcome, event.reviewer) == ("approved", "alice,bob")
    actions = [r.action for r in rig.audit_log.audit_records()]
    assert actions == ["approval.requested", "approval.voted", "approval.decided"]


async def test_under_a_quorum_one_reject_rejects(rig: Rig) -> None:
    await rig.request("ap-1")
    await rig.resolve("ap-1", "tok-alice")
    reply = await rig.resolve("ap-1", "tok-bob", approval_pb2.OUTCOME_REJECT)
    assert reply.status == approval_pb2.APPROVAL_STATUS_REJECTED
    assert [(e.outcome, e.reviewer) for e in rig.published()] == [("rejected", "bob")]


async def test_without_tokens_the_claimed_reviewer_is_used() -> None:
    auth = ReviewerAuth({})
    assert not auth.enabled
    assert auth.reviewer(None, "carol") == "carol"
    tokens = ReviewerAuth({"t": "dave"})
    assert tokens.reviewer([("Authorization", b"bearer t")], "carol") == "dave"
