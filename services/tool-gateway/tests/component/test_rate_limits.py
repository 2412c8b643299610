"""Per-tool rate limits as the tool gateway wires them from ``KEEL_TOOL_GATEWAY_RATE_LIMITS``:
a tool past its burst is refused RESOURCE_EXHAUSTED with a retry-after before policy is asked
or the tool runs; other tools keep their own buckets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from prometheus_client import CollectorRegistry

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import InMemoryRuntime
from keel_tool_gateway.adapters.tools.count import read_count
from keel_tool_gateway.adapters.tools.files import FileSettings
from keel_tool_gateway.app import SERVICE, build
from keel_tool_gateway.config import Settings

POLICY_SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
CONTEXT = common_pb2.RequestContext(session_id="s1", agent_id="a1", agent_profile="default")


class AllowAll(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def Evaluate(self, request, context):  # type: ignore[no-untyped-def]
        self.asked.append(request.tool_name)
        return policy_pb2.EvaluateResponse(decision=policy_pb2.DECISION_ALLOW, rule_id="allow")


@pytest.fixture
async def policy() -> AsyncIterator[tuple[AllowAll, str]]:
    fake = AllowAll()
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


def _call(key: str, tool: str, arguments: dict[str, object]) -> tool_pb2.ExecuteRequest:
    return tool_pb2.ExecuteRequest(
        context=CONTEXT,
        call=common_pb2.ToolCall(name=tool, arguments_json=json.dumps(arguments)),
        idempotency_key=key,
    )


async def test_a_tool_past_its_limit_is_refused_before_policy_or_the_tool(
    tmp_path: Path, policy: tuple[AllowAll, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, target = policy
    monkeypatch.setenv(
        "KEEL_TOOL_GATEWAY_RATE_LIMITS",
        json.dumps({"limits": {"tool:count": {"rate": 0.01, "burst": 1}}}),
    )
    counts = tmp_path / "counts"
    settings = Settings(
        policy_target=target,
        test_tools_dir=counts,
        files=FileSettings(workspace_root=tmp_path / "workspaces"),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = tool_pb2_grpc.ToolGatewayStub(channel)
        first = await stub.Execute(_call("k1", "count", {"name": "c"}))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Execute(_call("k2", "count", {"name": "c"}))
        other = await stub.Execute(_call("k3", "calculator", {"expression": "1+1"}))
    assert first.status == tool_pb2.EXECUTE_STATUS_OK
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # 100 s for the next token, less what passed since the first call.
    assert 90 <= int(dict(refused.value.trailing_metadata() or ())["retry-after"]) <= 100
    assert "tool 'count'" in (refused.value.details() or "")
    assert other.status == tool_pb2.EXECUTE_STATUS_OK
    assert fake.asked == ["count", "calculator"]
    assert read_count(counts / "c.count") == 1
