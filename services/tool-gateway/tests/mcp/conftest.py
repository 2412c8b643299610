"""Fixtures: the test MCP server mounted over stdio (a child process) or streamable HTTP
(uvicorn on 127.0.0.1 in this process)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import uvicorn

from keel_tool_gateway.adapters.mcp import McpMounts, McpSettings, mount_mcp_servers
from keel_tool_gateway.domain.registry import ToolRegistry

SERVER = Path(__file__).with_name("server.py")
ALLOWED = ["add", "echo", "fail", "slow"]
TIMEOUT_S = 1.0


def _load_server() -> ModuleType:
    # By path, under a unique name: no test directory goes on sys.path.
    spec = importlib.util.spec_from_file_location("keel_test_mcp_server", SERVER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = _load_server().build


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def http_url() -> Iterator[str]:
    """The test server over streamable HTTP; uvicorn runs on its own thread and loop, so a
    test's event loop never serves its own requests."""

    port = _free_port()
    config = uvicorn.Config(
        build().streamable_http_app(), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/mcp"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def stdio_server() -> dict[str, object]:
    """Settings of the test server over stdio, for tests that mount their own."""
    return server_settings("stdio", "")


def server_settings(transport: str, http_url: str, **extra: object) -> dict[str, object]:
    common: dict[str, object] = {"name": "t", "tools": ALLOWED, "timeout_s": TIMEOUT_S, **extra}
    if transport == "stdio":
        return {**common, "transport": "stdio", "command": sys.executable, "args": [str(SERVER)]}
    return {**common, "transport": "http", "url": http_url}


@pytest.fixture(scope="module", params=["stdio", "http"])
async def mounted(
    request: pytest.FixtureRequest, http_url: str
) -> AsyncIterator[tuple[ToolRegistry, McpMounts]]:
    registry = ToolRegistry(default_timeout_s=5.0)
    settings = McpSettings.model_validate({"servers": [server_settings(request.param, http_url)]})
    mounts = await mount_mcp_servers(settings, registry)
    assert mounts.failed == {}
    yield registry, mounts
    await mounts.aclose()
    await asyncio.sleep(0)
