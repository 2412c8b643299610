"""Shared set-up of the sandbox tests: fast limits, an isolation check, host process scans."""

import asyncio
import concurrent.futures
import functools
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from keel_tool_gateway.adapters.sandbox import Sandbox, SandboxError, SandboxSettings
from keel_tool_gateway.domain.registry import Tool

# Small limits keep each limit probe near one second.
FAST = SandboxSettings(
    cpu_seconds=1,
    wall_timeout_s=4.0,
    memory_mb=256,
    max_file_mb=1,
    scratch_mb=8,
    max_open_files=32,
    max_output_bytes=65536,
)
SECRET = "keel-sandbox-test-secret-4f1d9c"


@functools.cache
def isolation_problem() -> str:
    """'' when this machine can isolate a run (namespaces), else why not."""
    if not sys.platform.startswith("linux"):
        return "the sandbox needs Linux namespaces"

    async def probe() -> str:
        try:
            await Sandbox(SandboxSettings()).run("print(1)")
        except SandboxError as exc:
            return str(exc)
        return ""

    # On its own thread: a loop of its own, leaving the tests' session loop alone.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, probe()).result()


@pytest.fixture
def isolated() -> None:
    problem = isolation_problem()
    if problem:
        pytest.skip(f"no isolation on this machine: {problem}")


@pytest.fixture
def as_root(isolated: None) -> None:
    if os.getuid() != 0:
        pytest.skip("dropping to the sandbox uid needs root")


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KEEL_SANDBOX_TEST_SECRET", SECRET)
    return SECRET


async def call(tool: Tool[Any], **arguments: Any) -> Any:
    """Run a tool the way the gateway does, minus policy: validate, then await its run."""
    result = tool.run(tool.input_model.model_validate(arguments))
    return await result if inspect.isawaitable(result) else result


def processes_of(uid: int) -> set[int]:
    """PIDs on the host whose real uid is ``uid``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("Uid:") and int(line.split()[1]) == uid:
                found.add(int(entry.name))
    return found


def exists(path: str) -> bool:
    """On the host, outside any sandbox."""
    return Path(path).exists()


# Outcomes of the OS-layer escape probes (test_escape_probes.py): (probe, gateway, escaped).
PROBE_RESULTS: list[tuple[str, str, bool]] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """The suite's verdict in one line, for CI logs and docs/sandbox.md."""
    if PROBE_RESULTS:
        escaped = sorted(f"{name} ({gateway})" for name, gateway, bad in PROBE_RESULTS if bad)
        line = f"sandbox escape probes: {len(PROBE_RESULTS)} run, {len(escaped)} escaped"
        terminalreporter.write_line(line + (f": {', '.join(escaped)}" if escaped else ""))
