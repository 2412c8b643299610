"""The tool gateway and the real policy service, each on its own gRPC server, in-process."""

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_clients import CallOptions, PolicyClient
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryPublisher, in_memory_audit
from keel_policy.adapters.policy_file import load_policy
from keel_policy.config import DEFAULT_POLICY
from keel_policy.domain.engine import PolicyEngine
from keel_policy.handlers.grpc_servicer import PolicyServicer
from keel_policy.metrics import PolicyMetrics
from keel_policy.usecase import PolicyDecisions
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.execution import POLICY_UNAVAILABLE, ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.handlers.grpc_servicer import ToolGatewayServicer
from keel_tool_gateway.metrics import ToolGatewayMetrics
from keel_tool_gateway.testing import CountingTool
from keel_tool_gateway.usecase import ExecuteToolCall, ListTools

POLICY_SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
TOOL_SERVICE = tool_pb2.DESCRIPTOR.services_by_name["ToolGateway"].full_name
CONTEXT = common_pb2.RequestContext(
    session_id="sess-1", agent_id="agent-7", agent_profile="default", traceparent=""
)


@dataclass
class Stack:
    stub: tool_pb2_grpc.ToolGatewayStub
    counter: CountingTool
    metrics: CollectorRegistry
    gateway_audit: InMemoryPublisher
    policy_audit: InMemoryPublisher


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    policy_audit, policy_published = in_memory_audit("policy")
    policy_audit.start()
    policy_server = GrpcServer(
        "127.0.0.1",
        0,
        [
            (
                PolicyServicer(
                    PolicyDecisions(
                        PolicyEngine(load_policy(DEFAULT_POLICY)),
                        policy_audit,
                        PolicyMetrics(CollectorRegistry()),
                    )
                ),
                policy_pb2_grpc.add_PolicyServiceServicer_to_server,
                POLICY_SERVICE,
            )
        ],
        CollectorRegistry(),
    )
    await policy_server.start()
    policy_channel = insecure_channel(f"127.0.0.1:{policy_server.port}")

    counter = CountingTool()
    registry = builtin_registry()
    registry.register(counter.tool)
    service = ExecutionService(
        registry, PolicyClient(policy_channel, CallOptions(timeout_s=5.0)), ResultLedger(100)
    )
    gateway_audit, gateway_published = in_memory_audit("tool-gateway")
    gateway_audit.start()
    metrics = CollectorRegistry()
    servicer = ToolGatewayServicer(
        ExecuteToolCall(service, registry, gateway_audit, ToolGatewayMetrics(metrics)),
        ListTools(registry),
    )
    gateway_server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, tool_pb2_grpc.add_ToolGatewayServicer_to_server, TOOL_SERVICE)],
        CollectorRegistry(),
    )
    await gateway_server.start()
    channel = insecure_channel(f"127.0.0.1:{gateway_server.port}")
    yield Stack(
        tool_pb2_grpc.ToolGatewayStub(channel),
        counter,
        metrics,
        gateway_published,
        policy_published,
    )
    await channel.close()
    await gateway_server.stop(0)
    await policy_channel.close()
    await policy_server.stop(0)
    await gateway_audit.close()
    await policy_audit.close()


async def execute(
    stack: Stack, tool: str, arguments: object, key: str = ""
) -> tool_pb2.ExecuteResponse:
    request = tool_pb2.ExecuteRequest(
        context=CONTEXT,
        call=common_pb2.ToolCall(id="c1", name=tool, arguments_json=json.dumps(arguments)),
        idempotency_key=key,
    )
    reply: tool_pb2.ExecuteResponse = await stack.stub.Execute(request, timeout=5)
    return reply


async def test_list_tools(stack: Stack) -> None:
    reply = await stack.stub.ListTools(tool_pb2.ListToolsRequest(), timeout=5)
    tools = {t.name: t for t in reply.tools}
    assert sorted(tools) == ["calculator", "clock", "counter", "noop"]
    schema = json.loads(tools["calculator"].parameters_json_schema)
    assert schema["required"] == ["expression"]
    assert tools["calculator"].timeout_seconds == 2.0
    assert tools["noop"].timeout_seconds == 10.0


async def test_allowed_calculator_runs(stack: Stack) -> None:
    reply = await execute(stack, "calculator", {"expression": "(17 * 23) + 4"}, "sess-1:0:0")
    assert reply.status == tool_pb2.EXECUTE_STATUS_OK
    assert reply.output == "395"
    assert reply.error == ""
    assert reply.policy_rule == "allow-calculator"
    assert reply.duration_ms > 0

    [record] = stack.gateway_audit.audit_records()
    assert (record.action, record.actor, record.subject) == (
        "tool.execution",
        "agent-7",
        "calculator",
    )
    assert record.details["status"] == "ok"
    assert record.details["rule"] == "allow-calculator"
    assert record.details["idempotency_key"] == "sess-1:0:0"
    assert record.details["replayed"] is False
    assert record.details["arguments"] == {"expression": "(17 * 23) + 4"}
    [envelope] = stack.gateway_audit.envelopes("keel.audit")
    assert envelope.session_id == "sess-1"
    # The caller's context reached the policy service.
    [decision] = stack.policy_audit.audit_records()
    assert (decision.actor, decision.subject) == ("agent-7", "calculator")
    assert decision.details["profile"] == "default"


async def test_huge_power_is_denied_by_the_default_policy(stack: Stack) -> None:
    reply = await execute(stack, "calculator", {"expression": "2 ** 99999"})
    assert reply.status == tool_pb2.EXECUTE_STATUS_DENIED
    assert reply.policy_rule == "deny-huge-powers"
    assert reply.output == ""
    assert reply.error.startswith("denied by policy rule deny-huge-powers: ")


async def test_tool_the_policy_does_not_allow_never_runs(stack: Stack) -> None:
    reply = await execute(stack, "counter", {})
    assert reply.status == tool_pb2.EXECUTE_STATUS_DENIED
    assert reply.policy_rule == "default-deny"
    assert stack.counter.runs == 0


async def test_unknown_tool_errors_and_policy_is_not_asked(stack: Stack) -> None:
    reply = await execute(stack, "send_email", {"to": "x@y.z"})
    assert reply.status == tool_pb2.EXECUTE_STATUS_ERROR
    assert reply.error == "unknown tool 'send_email'"
    assert stack.policy_audit.audit_records() == []
    [record] = stack.gateway_audit.audit_records()
    assert record.subject == "send_email"
    executions = stack.metrics.get_sample_value(
        "keel_tool_gateway_executions_total", {"tool": "_unknown", "status": "error"}
    )
    assert executions == 1


async def test_replay_over_grpc(stack: Stack) -> None:
    first = await execute(stack, "calculator", {"expression": "6 * 7"}, "sess-1:3:0")
    second = await execute(stack, "calculator", {"expression": "6 * 7"}, "sess-1:3:0")
    assert first.output == second.output == "42"
    assert second.duration_ms == first.duration_ms
    assert len(stack.policy_audit.audit_records()) == 1
    replayed = [r.details["replayed"] for r in stack.gateway_audit.audit_records()]
    assert replayed == [False, True]
    hits = stack.metrics.get_sample_value(
        "keel_tool_gateway_ledger_hits_total", {"tool": "calculator"}
    )
    assert hits == 1


async def test_secret_arguments_are_redacted_in_the_audit(stack: Stack) -> None:
    reply = await execute(stack, "calculator", {"expression": "1", "api_key": "sk-live-123"})
    assert reply.status == tool_pb2.EXECUTE_STATUS_ERROR
    assert "api_key: Extra inputs are not permitted" in reply.error
    [record] = stack.gateway_audit.audit_records()
    assert record.details["arguments"] == {"expression": "1", "api_key": "[redacted]"}


async def test_overlong_idempotency_key_is_invalid(stack: Stack) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await execute(stack, "noop", {}, "k" * 300)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_unreachable_policy_fails_closed() -> None:
    counter = CountingTool()
    registry = builtin_registry()
    registry.register(counter.tool)
    async with insecure_channel(f"127.0.0.1:{free_port()}") as channel:
        service = ExecutionService(
            registry, PolicyClient(channel, CallOptions(timeout_s=1.0)), ResultLedger(10)
        )
        result = await service.execute(RequestContext(), "counter", "{}", "k")
    assert (result.status, result.error) == ("error", POLICY_UNAVAILABLE)
    assert counter.runs == 0


class Undecided(policy_pb2_grpc.PolicyServiceServicer):
    async def Evaluate(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.EvaluateResponse:
        return policy_pb2.EvaluateResponse(rule_id="?")

    async def ExplainRules(
        self, request: policy_pb2.ExplainRulesRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ExplainRulesResponse:
        return policy_pb2.ExplainRulesResponse()


async def test_reply_without_a_decision_fails_closed() -> None:
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(Undecided(), policy_pb2_grpc.add_PolicyServiceServicer_to_server, POLICY_SERVICE)],
        CollectorRegistry(),
    )
    await server.start()
    counter = CountingTool()
    registry = builtin_registry()
    registry.register(counter.tool)
    try:
        async with insecure_channel(f"127.0.0.1:{server.port}") as channel:
            service = ExecutionService(
                registry, PolicyClient(channel, CallOptions(timeout_s=2.0)), ResultLedger(10)
            )
            result = await service.execute(RequestContext(), "counter", "{}")
    finally:
        await server.stop(0)
    assert (result.status, result.error) == ("error", POLICY_UNAVAILABLE)
    assert counter.runs == 0
