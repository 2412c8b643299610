"""The MCP box with the gateway as an unprivileged user, as the Docker image runs it.

Started from root by ``test_mcp_box.py`` with a JSON config: it becomes ``uid`` (the sandbox
escape suite's ``_as_user``: a private mount namespace where /root shows only the
interpreter, then the uid switch and the given environment), mounts the probe server boxed,
makes the configured calls and prints what each returned, as one JSON line.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

PR_SET_DUMPABLE = 4
GATEWAY_PID = "$gateway_pid"  # an argument replaced by this process's pid


def _sandbox_probes() -> ModuleType:
    path = Path(__file__).parents[1] / "sandbox" / "probes.py"
    spec = importlib.util.spec_from_file_location("keel_test_sandbox_probes", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def run(config: dict[str, Any]) -> dict[str, str]:
    # Imported as the unprivileged user, after the switch (as the gateway would be).
    from keel_tool_gateway.adapters.mcp.connection import McpConnection
    from keel_tool_gateway.adapters.mcp.settings import McpServerSettings

    connection = McpConnection(McpServerSettings.model_validate(config["server"]))
    await connection.open()
    results: dict[str, str] = {}
    try:
        for name, (tool, arguments) in config["calls"].items():
            given = {k: os.getpid() if v == GATEWAY_PID else v for k, v in arguments.items()}
            results[name] = await connection.call(tool, given)
    finally:
        await connection.aclose()
    return results


def main() -> None:
    config = json.loads(sys.argv[1])
    _sandbox_probes()._as_user(config)
    # The uid switch left this process non-dumpable (its /proc entries root's); a gateway
    # started as the user is dumpable, so its environ is readable to its own uid. Be that.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    results = asyncio.run(run(config))
    print(json.dumps({"pid": os.getpid(), "uid": os.getuid(), "results": results}))


if __name__ == "__main__":
    main()
