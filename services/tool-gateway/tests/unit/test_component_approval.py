"""The gateway verifying approvals with the REAL approval servicer, both on in-process gRPC."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from keel.approval.v1 import approval_pb2, approval_pb2_grpc
from keel.common.v1 import common_pb2
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_approval.domain.book import ApprovalBook
from keel_approval.domain.models import Approval
from keel_approval.handlers.grpc_servicer import ApprovalServicer
from keel_approval.metrics import ApprovalMetrics
from keel_approval.usecases.decisions import Decider
from keel_clients import ApprovalClient, CallOptions
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.handlers.grpc_servicer import ToolGatewayServicer
from keel_tool_gateway.metrics import ToolGatewayMetrics
from keel_tool_gateway.testing import RecordingOutbox, StaticPolicy
from keel_tool_gateway.usecase import ExecuteToolCall, ListTools

APPROVAL_SERVICE = approval_pb2.DESCRIPTOR.services_by_name["ApprovalService"].full_name
TOOL_SERVICE = tool_pb2.DESCRIPTOR.services_by_name["ToolGateway"].full_name
KEY = "sess-1:4:0"
EMAIL = {"to": "bob@example.com", "subject": "Hi", "body": "green"}


@dataclass
class Rig:
    tools: tool_pb2_grpc.ToolGatewayStub
    approvals: approval_pb2_grpc.ApprovalServiceStub
    book: ApprovalBook
    outbox: RecordingOutbox
    audit: InMemoryPublisher

    def request(self, approval_id: str, arguments: dict[str, str], key: str = KEY) -> None:
        self.book.add_request(
            Approval.model_validate(
                {
                    "id": approval_id,
                    "session_id": "sess-1",
                    "agent_id": "agent-1",
                    "tool_name": "send_email",
                    "arguments": arguments,
                    "idempotency_key": key,
                    "created_at": "2025-01-01T00:00:00+00:00",
                }
            )
        )

    async def resolve(self, approval_id: str, outcome: int, modified: str = "") -> None:
        await self.approvals.Resolve(
            approval_pb2.ResolveRequest(
                id=approval_id,
                outcome=outcome,  # type: ignore[arg-type]
                reviewer="alice",
                modified_arguments_json=modified,
            ),
            timeout=5,
        )

    async def execute(
        self, arguments: dict[str, str], approval_id: str, key: str = KEY
    ) -> tool_pb2.ExecuteResponse:
        request = tool_pb2.ExecuteRequest(
            context=common_pb2.RequestContext(session_id="sess-1", agent_id="agent-1"),
            call=common_pb2.ToolCall(
                id="c", name="send_email", arguments_json=json.dumps(arguments)
            ),
            idempotency_key=key,
            approval_id=approval_id,
        )
        reply: tool_pb2.ExecuteResponse = await self.tools.Execute(request, timeout=5)
        return reply


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    approval_audit, _ = in_memory_audit("approval")
    approval_audit.start()
    book = ApprovalBook()
    approval_server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                ApprovalServicer(
                    book,
                    Decider(
                        book,
                        InMemoryPublisher(),
                        approval_audit,
                        ApprovalMetrics(CollectorRegistry()),
                    ),
                ),
                approval_pb2_grpc.add_ApprovalServiceServicer_to_server,
                APPROVAL_SERVICE,
            )
        ],
        CollectorRegistry(),
    )
    await approval_server.start()
    approval_channel = insecure_channel(f"127.0.0.1:{approval_server.port}")
    outbox = RecordingOutbox()
    registry = builtin_registry(outbox=outbox)
    service = ExecutionService(
        registry,
        StaticPolicy("allow", per_tool={"send_email": "require_approval"}),
        ResultLedger(),
        approvals=ApprovalClient(approval_channel, CallOptions(timeout_s=5.0)),
    )
    audit, published = in_memory_audit("tool-gateway")
    audit.start()
    servicer = ToolGatewayServicer(
        ExecuteToolCall(service, registry, audit, ToolGatewayMetrics(CollectorRegistry())),
        ListTools(registry),
    )
    gateway = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, tool_pb2_grpc.add_ToolGatewayServicer_to_server, TOOL_SERVICE)],
        CollectorRegistry(),
    )
    await gateway.start()
    channel = insecure_channel(f"127.0.0.1:{gateway.port}")
    yield Rig(
        tool_pb2_grpc.ToolGatewayStub(channel),
        approval_pb2_grpc.ApprovalServiceStub(approval_channel),
        book,
        outbox,
        published,
    )
    await channel.close()
    await gateway.stop(0)
    await approval_channel.close()
    await approval_server.stop(0)
    await audit.close()
    await approval_audit.close()


async def test_pending_then_approved_runs_once_and_audits_the_approval(rig: Rig) -> None:
    rig.request("ap-1", EMAIL)
    pending = await rig.execute(EMAIL, "ap-1")
    assert pending.status == tool_pb2.EXECUTE_STATUS_DENIED
    assert pending.error == "approval 'ap-1' is pending; nothing ran"
    await rig.resolve("ap-1", approval_pb2.OUTCOME_APPROVE)
    done = await rig.execute(EMAIL, "ap-1")
    assert done.status == tool_pb2.EXECUTE_STATUS_OK
    assert done.output.startswith("queued message ")
    assert done.output.endswith(" to bob@example.com")
    again = await rig.execute(EMAIL, "ap-1")
    assert again.output == done.output
    assert len(rig.outbox.sent) == 1
    details = [r.details for r in rig.audit.audit_records()]
    assert [(d["approval_id"], d["approval_outcome"], d["status"]) for d in details] == [
        ("ap-1", "pending", "denied"),
        ("ap-1", "approved", "ok"),
        ("ap-1", "approved", "ok"),
    ]
    assert [d["replayed"] for d in details] == [False, False, True]


async def test_modified_runs_with_the_reviewers_arguments(rig: Rig) -> None:
    rig.request("ap-2", EMAIL)
    changed = {**EMAIL, "to": "carol@example.com"}
    await rig.resolve("ap-2", approval_pb2.OUTCOME_MODIFY, json.dumps(changed))
    reply = await rig.execute(EMAIL, "ap-2")
    assert reply.status == tool_pb2.EXECUTE_STATUS_OK
    assert reply.output.endswith(" to carol@example.com")
    assert rig.outbox.sent[0].message.to == "carol@example.com"


async def test_rejected_unknown_and_mismatched_approvals_run_nothing(rig: Rig) -> None:
    rig.request("ap-3", EMAIL)
    await rig.resolve("ap-3", approval_pb2.OUTCOME_REJECT)
    rejected = await rig.execute(EMAIL, "ap-3")
    assert rejected.error == "approval 'ap-3' is rejected by alice; nothing ran"
    unknown = await rig.execute(EMAIL, "ap-404")
    assert unknown.error == "approval 'ap-404' not found; nothing ran"
    rig.request("ap-4", EMAIL)
    await rig.resolve("ap-4", approval_pb2.OUTCOME_APPROVE)
    other_args = await rig.execute({**EMAIL, "to": "eve@evil.test"}, "ap-4")
    assert other_args.error == "approval 'ap-4' was given for other arguments; nothing ran"
    other_key = await rig.execute(EMAIL, "ap-4", key="sess-1:5:0")
    assert other_key.error.startswith("approval 'ap-4' was given for idempotency key ")
    assert rig.outbox.sent == []
    statuses = {r.status for r in (rejected, unknown, other_args, other_key)}
    assert statuses == {tool_pb2.EXECUTE_STATUS_DENIED}


async def test_approval_service_down_fails_closed(rig: Rig) -> None:
    registry = builtin_registry(outbox=rig.outbox)
    async with insecure_channel("127.0.0.1:1") as channel:
        service = ExecutionService(
            registry,
            StaticPolicy("allow"),
            ResultLedger(),
            approvals=ApprovalClient(channel, CallOptions(timeout_s=1.0)),
        )
        result = await service.execute(
            RequestContext(), "send_email", json.dumps(EMAIL), KEY, approval_id="ap-1"
        )
    assert result.status == "error"
    assert result.error.startswith("approval service unavailable: approval 'ap-1'")
    assert rig.outbox.sent == []
