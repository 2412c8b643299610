"""Fallback on the built gateway: the mapping comes from the settings, the call goes through
the real gRPC server, policy is asked over gRPC for the alternative by name, the ledger record
names the tool that ran, and the audit log holds a ``tool.fallback`` record."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_contracts.events import AuditRecord, ToolResultRecorded
from keel_contracts.topics import AUDIT, TOOL_RESULTS
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryRuntime
from keel_tool_gateway.app import SERVICE, build
from keel_tool_gateway.config import Settings
from keel_tool_gateway.domain.registry import ProfileSettings
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings
from keel_tool_gateway.testing.resilience import FlakyDependency

POLICY_SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
CONTEXT = common_pb2.RequestContext(session_id="s1", agent_id="a1", agent_profile="default")


class AllowingPolicy(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def Evaluate(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.EvaluateResponse:
        self.asked.append(request.tool_name)
        return policy_pb2.EvaluateResponse(
            decision=policy_pb2.DECISION_ALLOW, rule_id=f"allow-{request.tool_name}", reason="ok"
        )


@pytest.fixture
async def policy() -> AsyncIterator[tuple[AllowingPolicy, str]]:
    fake = AllowingPolicy()
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(fake, policy_pb2_grpc.add_PolicyServiceServicer_to_server, POLICY_SERVICE)],
        CollectorRegistry(),
    )
    await server.start()
    try:
        yield fake, f"127.0.0.1:{server.port}"
    finally:
        await server.stop(0)


def call(key: str) -> tool_pb2.ExecuteRequest:
    return tool_pb2.ExecuteRequest(
        context=CONTEXT,
        call=common_pb2.ToolCall(name="primary", arguments_json="{}"),
        idempotency_key=key,
    )


async def test_the_built_gateway_falls_back_under_policy_and_audits_it(
    policy: tuple[AllowingPolicy, str],
) -> None:
    fake_policy, policy_target = policy
    settings = Settings(
        policy_target=policy_target,
        profiles=ProfileSettings(profiles={"default": ["primary", "mirror"]}),
        resilience=ResilienceSettings(
            retry_max_attempts=1,
            breaker_failure_threshold=1,
            fallbacks={"primary": ["mirror"]},
        ),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    parts = build(settings, runtime)
    primary, mirror = FlakyDependency(name="primary", always=True), FlakyDependency(name="mirror")
    parts.registry.register(primary.tool)
    parts.registry.register(mirror.tool)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = tool_pb2_grpc.ToolGatewayStub(channel)
        failed = await stub.Execute(call("k1"))  # opens primary's breaker
        answered = await stub.Execute(call("k2"))

    assert failed.error == "primary failed: backend unavailable"
    assert answered.status == tool_pb2.EXECUTE_STATUS_OK
    assert answered.output == "primary is unavailable (circuit open); answered by mirror\nok 1"
    assert answered.policy_rule == "allow-mirror"
    assert (primary.calls, mirror.calls) == (1, 1)
    assert fake_policy.asked == ["primary", "primary", "mirror"]

    recorded = runtime.bus.parsed(TOOL_RESULTS, ToolResultRecorded)
    assert [(r.idempotency_key, r.tool) for r in recorded] == [("k1", "primary"), ("k2", "mirror")]

    fallbacks = [
        record
        for record in (e.parse(AuditRecord) for e in runtime.bus.envelopes(AUDIT))
        if record.action == "tool.fallback"
    ]
    assert [(r.subject, r.details["from"], r.details["to"]) for r in fallbacks] == [
        ("primary", "primary", "mirror")
    ]
    assert fallbacks[0].details["reason"].startswith("circuit open for primary until ")
    assert fallbacks[0].details["idempotency_key"] == "k2"
