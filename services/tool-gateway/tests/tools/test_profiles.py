"""Per-profile catalogs: globs, the default profile, the OpenAI tools format, ListTools."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from prometheus_client import CollectorRegistry

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_core.grpc import GrpcServer, insecure_channel
from keel_core.testing import in_memory_audit
from keel_tool_gateway.adapters.tools.calculator import CALCULATOR
from keel_tool_gateway.adapters.tools.clock import make_clock
from keel_tool_gateway.adapters.tools.files import FileSettings, make_file_tools
from keel_tool_gateway.adapters.tools.noop import NOOP
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.registry import ProfileSettings, ToolRegistry
from keel_tool_gateway.handlers.grpc_servicer import ToolGatewayServicer
from keel_tool_gateway.metrics import ToolGatewayMetrics
from keel_tool_gateway.testing import CountingTool, StaticPolicy
from keel_tool_gateway.usecase import ExecuteToolCall, ListTools

SERVICE = tool_pb2.DESCRIPTOR.services_by_name["ToolGateway"].full_name
PROFILES = ProfileSettings(
    profiles={
        "default": ["calculator", "clock", "noop", "file_*"],
        "restricted": ["calculator"],
        "files": ["file_r*", "file_list"],
    }
)


def registry(profiles: ProfileSettings | None = PROFILES) -> ToolRegistry:
    reg = ToolRegistry(4.0, profiles)
    for tool in (CALCULATOR, make_clock(), NOOP, CountingTool(name="secret").tool):
        reg.register(tool)
    for tool in make_file_tools(FileSettings()):
        reg.register(tool)
    return reg


def names(reg: ToolRegistry, profile: str | None) -> list[str]:
    return [entry.name for entry in reg.catalog(profile)]


def test_each_profile_sees_its_globs() -> None:
    reg = registry()
    assert names(reg, "restricted") == ["calculator"]
    assert names(reg, "files") == ["file_list", "file_read"]
    default = ["calculator", "clock", "file_list", "file_read", "file_write", "noop"]
    assert names(reg, "default") == default
    # Unknown and empty profiles get the default profile's tools; none lists "secret".
    assert names(reg, "who-knows") == default
    assert names(reg, "") == default
    # No profile: every tool (internal use, tests).
    assert "secret" in names(reg, None)


def test_without_profiles_every_profile_sees_every_tool() -> None:
    reg = registry(None)
    assert names(reg, "restricted") == names(reg, None)


def test_default_profile_settings() -> None:
    settings = ProfileSettings()
    # MCP tools only where a profile lists them: a server's tools are third-party code.
    assert not settings.allows("default", "mcp.github.search")
    assert ProfileSettings(profiles={"default": ["mcp.github.*"]}).allows(
        "default", "mcp.github.search"
    )
    assert settings.allows("default", "memory_search")
    assert settings.allows("anything", "file_write")
    assert not settings.allows("default", "shell")
    assert not settings.allows("restricted", "clock")
    with pytest.raises(ValueError, match="default_profile 'main' is not one of the profiles"):
        ProfileSettings(default_profile="main")


def test_openai_tools_format() -> None:
    [calc] = registry().openai_tools("restricted")
    assert calc["type"] == "function"
    assert set(calc["function"]) == {"name", "description", "parameters"}
    assert calc["function"]["name"] == "calculator"
    parameters = calc["function"]["parameters"]
    assert parameters["type"] == "object"
    assert parameters["required"] == ["expression"]
    json.dumps(calc)  # plain JSON


@pytest.fixture
async def stub() -> AsyncIterator[tool_pb2_grpc.ToolGatewayStub]:
    reg = registry()
    audit, _ = in_memory_audit("tool-gateway")
    audit.start()
    servicer = ToolGatewayServicer(
        ExecuteToolCall(
            ExecutionService(reg, StaticPolicy("allow"), ResultLedger()),
            reg,
            audit,
            ToolGatewayMetrics(CollectorRegistry()),
        ),
        ListTools(reg),
    )
    server = GrpcServer(
        "127.0.0.1",
        0,
        [(servicer, tool_pb2_grpc.add_ToolGatewayServicer_to_server, SERVICE)],
        CollectorRegistry(),
    )
    await server.start()
    channel = insecure_channel(f"127.0.0.1:{server.port}")
    yield tool_pb2_grpc.ToolGatewayStub(channel)
    await channel.close()
    await server.stop(0)
    await audit.close()


async def test_list_tools_is_per_profile(stub: tool_pb2_grpc.ToolGatewayStub) -> None:
    reply = await stub.ListTools(tool_pb2.ListToolsRequest(agent_profile="restricted"), timeout=5)
    [calc] = reply.tools
    assert calc.name == "calculator"
    assert json.loads(calc.parameters_json_schema)["required"] == ["expression"]
    assert calc.timeout_seconds == 2.0
    unknown = await stub.ListTools(tool_pb2.ListToolsRequest(agent_profile="nope"), timeout=5)
    assert [t.name for t in unknown.tools] == [
        "calculator",
        "clock",
        "file_list",
        "file_read",
        "file_write",
        "noop",
    ]
    assert {t.name: t.timeout_seconds for t in unknown.tools}["noop"] == 4.0
