"""MCP tools mounted from a server written in this suite, over stdio and streamable HTTP,
and run through the gateway's own execution path (validation, policy, time-out)."""

from __future__ import annotations

import json
import sys

import pytest

from keel_contracts.errors import ConfigError
from keel_contracts.untrusted import mark_untrusted_description
from keel_tool_gateway.adapters.mcp import McpMounts, McpSettings, mount_mcp_servers
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.domain.registry import ProfileSettings, ToolRegistry
from keel_tool_gateway.testing import StaticPolicy

TIMEOUT_S = 1.0  # conftest's
CTX = RequestContext(session_id="s1", agent_id="a1", agent_profile="default")
Mounted = tuple[ToolRegistry, McpMounts]


def service(registry: ToolRegistry, policy: StaticPolicy | None = None) -> ExecutionService:
    return ExecutionService(registry, policy or StaticPolicy("allow"), ResultLedger())


async def test_lists_the_allowed_tools_with_their_schemas(mounted: Mounted) -> None:
    registry, mounts = mounted
    assert sorted(mounts.tool_names) == [
        "mcp.t._output_page",
        "mcp.t.add",
        "mcp.t.echo",
        "mcp.t.fail",
        "mcp.t.slow",
    ]
    assert registry.get("mcp.t.hidden") is None
    catalog = {entry.name: entry for entry in registry.catalog()}
    add = catalog["mcp.t.add"]
    # The server's words, marked as untrusted data with their source.
    assert add.description == mark_untrusted_description("MCP server 't'", "Add two integers.")
    assert add.parameters_schema["required"] == ["a", "b"]
    assert add.parameters_schema["properties"]["a"]["type"] == "integer"
    assert add.timeout_s == TIMEOUT_S
    [tool] = [t for t in registry.openai_tools() if t["function"]["name"] == "mcp.t.echo"]
    assert tool["type"] == "function"
    assert tool["function"]["parameters"]["properties"]["times"]["default"] == 1


async def test_call_returns_the_text_content(mounted: Mounted) -> None:
    registry, _ = mounted
    result = await service(registry).execute(CTX, "mcp.t.add", json.dumps({"a": 17, "b": 25}))
    assert (result.status, result.output, result.error) == ("ok", "42", "")
    result = await service(registry).execute(CTX, "mcp.t.echo", '{"text": "hi", "times": 3}')
    assert result.output == "hi hi hi"


async def test_arguments_are_validated_against_the_json_schema(mounted: Mounted) -> None:
    registry, _ = mounted
    result = await service(registry).execute(CTX, "mcp.t.add", '{"a": "x"}')
    assert result.status == "error"
    assert result.error.startswith("invalid arguments for mcp.t.add: ")
    assert "'b' is a required property" in result.error
    assert "a: 'x' is not of type 'integer'" in result.error


async def test_server_error_is_a_tool_error(mounted: Mounted) -> None:
    registry, _ = mounted
    result = await service(registry).execute(CTX, "mcp.t.fail", '{"message": "disk on fire"}')
    assert result.status == "error"
    assert result.error.startswith("mcp.t.fail failed: ")
    assert "disk on fire" in result.error


async def test_time_out_applies_and_the_connection_survives(mounted: Mounted) -> None:
    registry, _ = mounted
    result = await service(registry).execute(CTX, "mcp.t.slow", '{"seconds": 5}')
    assert result.status == "error"
    assert "mcp.t.slow timed out after 1s" in result.error
    again = await service(registry).execute(CTX, "mcp.t.add", '{"a": 1, "b": 1}')
    assert again.output == "2"


async def test_policy_decides_mcp_tools_like_any_other(mounted: Mounted) -> None:
    registry, _ = mounted
    policy = StaticPolicy("allow", per_tool={"mcp.t.echo": "deny"})
    result = await service(registry, policy).execute(CTX, "mcp.t.echo", '{"text": "x"}')
    assert result.status == "denied"
    assert [call.tool for call in policy.calls] == ["mcp.t.echo"]


async def test_profiles_filter_mcp_tools(mounted: Mounted) -> None:
    registry, _ = mounted
    profiles = ProfileSettings(profiles={"default": ["mcp.*"], "only-add": ["mcp.t.add"]})
    view = ToolRegistry(profiles=profiles)
    for tool in registry:
        view.register(tool)
    assert [e.name for e in view.catalog("only-add")] == ["mcp.t.add"]
    assert len(view.catalog("nobody")) == 5  # with the server's page reader


async def test_aclose_unregisters_and_disconnects(stdio_server: dict[str, object]) -> None:
    registry = ToolRegistry()
    settings = McpSettings.model_validate({"servers": [stdio_server]})
    mounts = await mount_mcp_servers(settings, registry)
    tool = registry.get("mcp.t.add")
    assert tool is not None
    await mounts.aclose()
    assert len(registry) == 0
    with pytest.raises(Exception, match="is down"):
        await tool.run(tool.input_model.model_validate({"a": 1, "b": 2}))


async def test_a_server_that_does_not_start_is_skipped_or_fatal() -> None:
    broken = {
        "name": "broken",
        "transport": "stdio",
        "command": sys.executable,
        "args": ["-c", "import sys; sys.exit(3)"],
        "connect_timeout_s": 5.0,
    }
    registry = ToolRegistry()
    mounts = await mount_mcp_servers(McpSettings.model_validate({"servers": [broken]}), registry)
    assert "broken" in mounts.failed
    assert len(registry) == 0
    required = McpSettings.model_validate({"servers": [{**broken, "required": True}]})
    with pytest.raises(ConfigError, match="'broken' could not be mounted"):
        await mount_mcp_servers(required, ToolRegistry())


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="stdio needs a command"):
        McpSettings.model_validate({"servers": [{"name": "x", "transport": "stdio"}]})
    with pytest.raises(ValueError, match="http needs an http"):
        McpSettings.model_validate({"servers": [{"name": "x", "transport": "http"}]})
    with pytest.raises(ValueError, match="unique"):
        McpSettings.model_validate(
            {"servers": [{"name": "x", "transport": "http", "url": "http://h/mcp"}] * 2}
        )
    with pytest.raises(ValueError, match="pattern"):
        McpSettings.model_validate(
            {"servers": [{"name": "a.b", "transport": "http", "url": "http://h/mcp"}]}
        )
