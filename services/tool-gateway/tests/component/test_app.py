"""The tool gateway's real composition root on an in-memory runtime: the wiring itself is under
test (servicer, use case, policy client, ledger table, audit, metrics), with a real gRPC server
on loopback and the policy service faked by an in-process gRPC servicer."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path

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
from keel_tool_gateway.adapters.tools.count import read_count
from keel_tool_gateway.adapters.tools.files import FileSettings
from keel_tool_gateway.app import SERVICE, build
from keel_tool_gateway.config import Settings

POLICY_SERVICE = policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name
CONTEXT = common_pb2.RequestContext(session_id="s1", agent_id="a1", agent_profile="default")


class FakePolicy(policy_pb2_grpc.PolicyServiceServicer):
    """Allows every tool by rule ``fake-allow``; keeps the tool name of each request."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.keys: list[str] = []

    async def Evaluate(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.EvaluateResponse:
        self.asked.append(request.tool_name)
        self.keys.append(request.idempotency_key)
        return policy_pb2.EvaluateResponse(
            decision=policy_pb2.DECISION_ALLOW, rule_id="fake-allow", reason="fake"
        )


@pytest.fixture
async def policy() -> AsyncIterator[tuple[FakePolicy, str]]:
    fake = FakePolicy()
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


def execute(key: str, name: str) -> tool_pb2.ExecuteRequest:
    return tool_pb2.ExecuteRequest(
        context=CONTEXT,
        call=common_pb2.ToolCall(name="count", arguments_json=json.dumps({"name": name})),
        idempotency_key=key,
    )


async def test_the_built_gateway_lists_runs_records_audits_and_replays(
    tmp_path: Path, policy: tuple[FakePolicy, str]
) -> None:
    fake_policy, policy_target = policy
    counts = tmp_path / "counts"
    settings = Settings(
        policy_target=policy_target,
        test_tools_dir=counts,
        files=FileSettings(workspace_root=tmp_path / "workspaces"),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = tool_pb2_grpc.ToolGatewayStub(channel)
        default = await stub.ListTools(tool_pb2.ListToolsRequest(agent_profile="default"))
        restricted = await stub.ListTools(tool_pb2.ListToolsRequest(agent_profile="restricted"))
        first = await stub.Execute(execute("key-1", "c1"))
        second = await stub.Execute(execute("key-1", "c1"))

    # The catalog is the shipped registry seen through the settings' profiles.
    assert [tool.name for tool in default.tools] == [
        "calculator",
        "clock",
        "count",
        "count_once",
        "file_list",
        "file_read",
        "file_write",
        "http_fetch",
        "memory_search",
        "memory_store",
        "noop",
        "python",
        "send_email",
    ]
    assert [tool.name for tool in restricted.tools] == ["calculator"]
    assert json.loads(default.tools[0].parameters_json_schema)["required"] == ["expression"]

    # The allowed call ran once: policy was asked once, the counter file says 1, and the
    # replay got the same answer from the ledger without asking policy or running again.
    assert first.status == tool_pb2.EXECUTE_STATUS_OK
    assert first.output == "1"
    assert first.policy_rule == "fake-allow"
    assert (second.status, second.output, second.policy_rule) == (
        tool_pb2.EXECUTE_STATUS_OK,
        "1",
        "fake-allow",
    )
    assert fake_policy.asked == ["count"]
    # Policy hears the call's key: its running totals count a call decided twice once.
    assert fake_policy.keys == ["key-1"]
    assert read_count(counts / "c1.count") == 1

    # One durable record on the tool-results topic, keyed by the idempotency key.
    records = runtime.bus.records(TOOL_RESULTS)
    assert [record.key for record in records] == [b"key-1"]
    recorded = runtime.bus.parsed(TOOL_RESULTS, ToolResultRecorded)
    assert [(r.idempotency_key, r.tool, r.status, r.output, r.rule_id) for r in recorded] == [
        ("key-1", "count", "ok", "1", "fake-allow")
    ]

    # Both calls are audited; the second as a replay.
    audited = [
        (envelope.session_id, envelope.parse(AuditRecord))
        for envelope in runtime.bus.envelopes(AUDIT)
    ]
    executions = [
        (session, r.subject, r.actor, r.details["status"], r.details["replayed"])
        for session, r in audited
        if r.action == "tool.execution"
    ]
    assert executions == [
        ("s1", "count", "a1", "ok", False),
        ("s1", "count", "a1", "ok", True),
    ]
    assert all(r.details["idempotency_key"] == "key-1" for _, r in audited)

    # Counted on the runtime's registry.
    sample = runtime.registry.get_sample_value
    assert sample("keel_tool_gateway_executions_total", {"tool": "count", "status": "ok"}) == 2
    assert sample("keel_tool_gateway_ledger_hits_total", {"tool": "count"}) == 1


async def test_a_policy_outage_is_an_unavailable_status_not_a_tool_error(tmp_path: Path) -> None:
    """Nothing ran because policy could not answer: the caller must wait that out, so the
    gateway answers UNAVAILABLE instead of an error result a model would reason about."""
    counts = tmp_path / "counts"
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead_policy = f"127.0.0.1:{probe.getsockname()[1]}"
    settings = Settings(
        policy_target=dead_policy,
        policy_timeout_s=0.5,
        test_tools_dir=counts,
        files=FileSettings(workspace_root=tmp_path / "workspaces"),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = tool_pb2_grpc.ToolGatewayStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Execute(execute("key-1", "c1"))

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "policy unavailable" in (refused.value.details() or "")
    assert not (counts / "c1.count").exists()
    assert runtime.bus.records(TOOL_RESULTS) == []


async def test_the_built_gateway_mounts_mcp_tools_pins_and_audits_them(
    tmp_path: Path, policy: tuple[FakePolicy, str]
) -> None:
    """The wiring of MCP mounts: the first mount's pins go to the configured pin_dir and to
    the audit log; the tools reach only the profile that names them, with the server's
    description marked untrusted."""
    import sys

    from keel_tool_gateway.adapters.mcp import McpSettings
    from keel_tool_gateway.domain.registry import ProfileSettings

    _, policy_target = policy
    server = Path(__file__).parents[1] / "mcp" / "server.py"
    settings = Settings(
        policy_target=policy_target,
        files=FileSettings(workspace_root=tmp_path / "workspaces"),
        mcp=McpSettings.model_validate(
            {
                "servers": [
                    {
                        "name": "t",
                        "transport": "stdio",
                        "command": sys.executable,
                        "args": [str(server)],
                        "tools": ["add"],
                    }
                ],
                "pin_dir": str(tmp_path / "pins"),
            }
        ),
        profiles=ProfileSettings(
            profiles={"default": ["calculator"], "mcp-user": ["calculator", "mcp.t.*"]}
        ),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        stub = tool_pb2_grpc.ToolGatewayStub(channel)
        default = await stub.ListTools(tool_pb2.ListToolsRequest(agent_profile="default"))
        user = await stub.ListTools(tool_pb2.ListToolsRequest(agent_profile="mcp-user"))

    assert [tool.name for tool in default.tools] == ["calculator"]
    offered = {tool.name: tool for tool in user.tools}
    assert sorted(offered) == ["calculator", "mcp.t._output_page", "mcp.t.add"]
    description = offered["mcp.t.add"].description
    assert description.startswith("Description supplied by MCP server 't' (untrusted data")
    assert '<tool_description source="MCP server &#x27;t&#x27;" trust="untrusted">' in description
    pins = json.loads((tmp_path / "pins" / "t.json").read_text())
    assert list(pins["tools"]) == ["add"]
    pinned = [
        (record.subject, record.details["sha256"])
        for record in (envelope.parse(AuditRecord) for envelope in runtime.bus.envelopes(AUDIT))
        if record.action == "mcp.tool.pinned"
    ]
    assert pinned == [("mcp.t.add", pins["tools"]["add"]["sha256"])]


async def test_health_is_not_serving_while_a_required_mcp_server_is_down(
    tmp_path: Path, policy: tuple[FakePolicy, str]
) -> None:
    """A required server's death takes the gateway's gRPC health to NOT_SERVING (an
    orchestrator stops routing calls to tools that cannot run) and its reconnection back."""
    import asyncio
    import os
    import signal
    import sys

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from keel_tool_gateway.adapters.mcp import McpSettings
    from keel_tool_gateway.domain.registry import ProfileSettings

    _, policy_target = policy
    server = Path(__file__).parents[1] / "mcp" / "server.py"
    settings = Settings(
        policy_target=policy_target,
        files=FileSettings(workspace_root=tmp_path / "workspaces"),
        mcp=McpSettings.model_validate(
            {
                "servers": [
                    {
                        "name": "t",
                        "transport": "stdio",
                        "command": sys.executable,
                        "args": [str(server)],
                        "tools": ["pid"],
                        # A plain child: its `pid` tool names the process to kill (boxed, it
                        # would be PID 1 of its own namespace).
                        "isolation": "none",
                        "required": True,
                        "check_interval_s": 0.2,
                        "reconnect_initial_s": 0.05,
                        "reconnect_max_s": 0.5,
                    }
                ],
            }
        ),
        profiles=ProfileSettings(profiles={"default": ["mcp.t.*"]}),
    )
    runtime = InMemoryRuntime(SERVICE, settings)
    build(settings, runtime)
    async with runtime.running(), insecure_channel(runtime.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)

        async def status() -> int:
            answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
            return int(answer.status)

        async def until(expected: int) -> None:
            for _ in range(200):
                if await status() == expected:
                    return
                await asyncio.sleep(0.05)
            raise AssertionError(f"health never became {expected}")

        assert await status() == health_pb2.HealthCheckResponse.SERVING
        stub = tool_pb2_grpc.ToolGatewayStub(channel)
        answer = await stub.Execute(
            tool_pb2.ExecuteRequest(
                context=CONTEXT, call=common_pb2.ToolCall(name="mcp.t.pid", arguments_json="{}")
            )
        )
        os.kill(int(answer.output), signal.SIGKILL)
        await until(health_pb2.HealthCheckResponse.NOT_SERVING)
        await until(health_pb2.HealthCheckResponse.SERVING)
