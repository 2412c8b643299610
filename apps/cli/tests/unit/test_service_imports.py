"""The ``keel`` command is an application: of a service it imports only the names the service
publishes at its top level (``keel_agent_loop``, ``keel_policy``), never a module inside it.
``keel_cli.stack`` names service modules as strings to spawn them; strings are not imports."""

from __future__ import annotations

import ast
from pathlib import Path

import keel_cli

SERVICES = (
    "keel_agent_loop",
    "keel_llm_gateway",
    "keel_tool_gateway",
    "keel_policy",
    "keel_memory",
    "keel_approval",
)
SOURCE = Path(keel_cli.__file__).parent


def imported_modules(path: Path) -> list[str]:
    modules: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
    return modules


def test_the_cli_imports_only_the_services_public_names() -> None:
    reaching_in = [
        f"{path.relative_to(SOURCE)}: {module}"
        for path in sorted(SOURCE.rglob("*.py"))
        for module in imported_modules(path)
        if module.split(".")[0] in SERVICES and module not in ("keel_agent_loop", "keel_policy")
    ]
    assert reaching_in == []


def test_the_check_sees_imports_inside_functions() -> None:
    assert "keel_agent_loop" in imported_modules(SOURCE / "replay_cmd.py")
    assert "keel_policy" in imported_modules(SOURCE / "policy_cmd.py")
