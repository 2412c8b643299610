"""The bypass proof over the wire: the tool gateway and the real policy service (default
policy) on in-process gRPC servers. Whatever a caller sends, a counting tool runs only when the
real policy allows it, or requires approval and a matching approved approval is sent."""

import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_clients import CallOptions, PolicyClient
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import in_memory_audit
from keel_policy.adapters.policy_file import load_policy
from keel_policy.config import DEFAULT_POLICY
from keel_policy.domain.engine import PolicyEngine
from keel_policy.handlers.grpc_servicer import PolicyServicer
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import ApprovalView
from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.handlers.grpc_servicer import ToolGatewayServicer
from keel_tool_gateway.metrics import ToolGatewayMetrics
from keel_tool_gateway.testing import CountingTool, StaticApprovals
from keel_tool_gateway.usecase import ExecuteToolCall, ListTools

POLICY_SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
TOOL_SERVICE = tool_pb2.DESCRIPTOR.services_by_name["ToolGateway"].full_name

# In the default policy: `count` is allowed, `send_*` needs approval, anything else is denied
# (deny by default), and `calculator` is denied for huge powers.
ALLOWED, NEEDS_APPROVAL, DENIED = "count", "send_probe", "counter"
ARGS = {"n": 3}


@dataclass
class Wire:
    stub: tool_pb2_grpc.ToolGatewayStub
    tools: dict[str, CountingTool]
    approvals: StaticApprovals


@pytest.fixture
async def wire() -> AsyncIterator[Wire]:
    policy_audit, _ = in_memory_audit("policy")
    policy_audit.start()
    policy_servicer = PolicyServicer(
        PolicyDecisions(
            PolicyEngine(load_policy(DEFAULT_POLICY)),
            policy_audit,
            PolicyMetrics(CollectorRegistry()),
        )
    )
    policy_server = GrpcServer(
        "127.0.0.1",
        0,
        [(policy_servicer, policy_pb2_grpc.add_PolicyServiceServicer_to_server, POLICY_SERVICE)],
        CollectorRegistry(),
    )
    await policy_server.start()
    policy_channel = insecure_channel(f"127.0.0.1:{policy_server.port}")
    tools = {name: CountingTool(name=name) for name in (ALLOWED, NEEDS_APPROVAL, DENIED)}
    registry = ToolRegistry()
    for counting in tools.values():
        registry.register(counting.tool)
    approvals = StaticApprovals()
    service = ExecutionService(
        registry,
        PolicyClient(policy_channel, CallOptions(timeout_s=5.0)),
        ResultLedger(1000),
        approvals=approvals,
    )
    audit, _ = in_memory_audit("tool-gateway")
    audit.start()
    metrics = ToolGatewayMetrics(CollectorRegistry())
    servicer = ToolGatewayServicer(
        ExecuteToolCall(service, registry, audit, metrics), ListTools(registry)
    )
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, tool_pb2_grpc.add_ToolGatewayServicer_to_server, TOOL_SERVICE)],
        CollectorRegistry(),
    )
    await server.start()
    channel = insecure_channel(f"127.0.0.1:{server.port}")
    yield Wire(tool_pb2_grpc.ToolGatewayStub(channel), tools, approvals)
    await channel.close()
    await server.stop(0)
    await policy_channel.close()
    await policy_server.stop(0)
    await audit.close()
    await policy_audit.close()


APPROVAL_KINDS = ["none", "approved", "pending", "rejected", "other_args", "other_key", "unknown"]
ARGUMENT_KINDS = {"valid": json.dumps(ARGS), "invalid": '{"n": -1}', "malformed": "{"}


def approval(kind: str, tool: str, key: str, arguments: str) -> ApprovalView | None:
    if kind in ("none", "unknown"):
        return None
    status = "approved" if kind in ("approved", "other_args", "other_key") else kind
    return ApprovalView.model_validate(
        {
            "id": f"ap-{key}",
            "status": status,
            "tool_name": tool,
            "idempotency_key": "elsewhere" if kind == "other_key" else key,
            "arguments_json": '{"n": 4}' if kind == "other_args" else arguments,
        }
    )


async def test_only_policy_allow_or_a_matching_approval_runs_a_tool(wire: Wire) -> None:
    combos = itertools.product(
        (ALLOWED, NEEDS_APPROVAL, DENIED, "not_registered"), APPROVAL_KINDS, ARGUMENT_KINDS
    )
    expected_runs = dict.fromkeys(wire.tools, 0)
    for i, (tool, kind, args_kind) in enumerate(combos):
        key, arguments = f"sess:{i}:0", ARGUMENT_KINDS[args_kind]
        record = approval(kind, tool, key, arguments)
        if record is not None:
            wire.approvals.approvals[record.id] = record
        request = tool_pb2.ExecuteRequest(
            context=common_pb2.RequestContext(session_id="sess", agent_profile="default"),
            call=common_pb2.ToolCall(id="c", name=tool, arguments_json=arguments),
            idempotency_key=key,
            approval_id="" if kind == "none" else f"ap-{key}",
        )
        reply = await wire.stub.Execute(request, timeout=5)
        verified = kind in ("none", "approved")
        runs = (
            args_kind == "valid"
            and verified
            and (tool == ALLOWED or (tool == NEEDS_APPROVAL and kind == "approved"))
        )
        if runs:
            expected_runs[tool] += 1
        actual_runs = {name: t.runs for name, t in wire.tools.items()}
        assert actual_runs == expected_runs, f"{tool} {kind} {args_kind}: {reply}"
        assert (reply.status == tool_pb2.EXECUTE_STATUS_OK) == runs, (tool, kind, args_kind)
        if tool == DENIED:
            assert reply.status != tool_pb2.EXECUTE_STATUS_OK
    assert wire.tools[DENIED].runs == 0
    assert expected_runs[ALLOWED] > 0
    assert expected_runs[NEEDS_APPROVAL] > 0


async def test_a_replayed_key_never_runs_again_over_the_wire(wire: Wire) -> None:
    request = tool_pb2.ExecuteRequest(
        context=common_pb2.RequestContext(session_id="sess"),
        call=common_pb2.ToolCall(id="c", name=ALLOWED, arguments_json=json.dumps(ARGS)),
        idempotency_key="sess:9:0",
    )
    for _ in range(5):
        reply = await wire.stub.Execute(request, timeout=5)
        assert reply.status == tool_pb2.EXECUTE_STATUS_OK
    assert wire.tools[ALLOWED].runs == 1
