"""The layer rules of the house, held by a test instead of by memory (docs/architecture.md).

Every arrow points down: applications → services' public APIs → clients → chassis →
contracts. Each rule reads every module of its layer and lists the imports that break it, so
a failure names the file, the line and the import.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STDLIB = frozenset(sys.stdlib_module_names) | {"__future__"}
SERVICES = {
    path.name: next(path.glob("src/keel_*")).name for path in sorted(REPO.glob("services/*"))
}
SERVICE_PACKAGES = frozenset(SERVICES.values())
APP_PACKAGES = frozenset(p.name for p in REPO.glob("apps/*/src/keel_*"))
# Pure libraries a domain may use like pydantic: computation on values, no I/O. jsonschema
# checks tool arguments against the JSON Schema a tool or model declared.
PURE = {"pydantic", "jsonschema"}
# Generated protobuf code (libs/protos) lives under the ``keel`` namespace.
LIBS = {"keel_contracts", "keel_core", "keel_clients", "keel"}


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """Absolute module names imported by ``path`` (relative imports stay in their package)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def top(module: str) -> str:
    return module.split(".")[0]


def violations(
    root: Path, allowed: frozenset[str] | set[str], prefixes: tuple[str, ...] = ()
) -> list[str]:
    """Imports under ``root`` whose top-level package is not in ``allowed`` and whose full name
    does not start with one of ``prefixes``."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, module in imports(path):
            if top(module) in allowed or module.startswith(prefixes):
                continue
            found.append(f"{path.relative_to(REPO)}:{line}: {module}")
    return found


def assert_none(found: list[str]) -> None:
    assert not found, "imports that break the rule:\n" + "\n".join(found)


def test_contracts_are_pure() -> None:
    """The system's language imports pydantic and the standard library only."""
    root = REPO / "libs/contracts/src/keel_contracts"
    assert_none(violations(root, STDLIB | {"pydantic", "keel_contracts"}))


def test_the_chassis_knows_no_client_service_or_application() -> None:
    root = REPO / "libs/core/src/keel_core"
    banned = SERVICE_PACKAGES | APP_PACKAGES | {"keel_clients"}
    found = [v for v in violations(root, set()) if top(v.rsplit(": ", 1)[1]) in banned]
    assert_none(found)


def test_clients_sit_on_contracts_protos_and_the_chassis_only() -> None:
    root = REPO / "libs/clients/src/keel_clients"
    banned = SERVICE_PACKAGES | APP_PACKAGES
    found = [v for v in violations(root, set()) if top(v.rsplit(": ", 1)[1]) in banned]
    assert_none(found)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_no_service_imports_another(service: str) -> None:
    package = SERVICES[service]
    root = REPO / "services" / service / "src" / package
    others = (SERVICE_PACKAGES - {package}) | APP_PACKAGES
    found = [v for v in violations(root, set()) if top(v.rsplit(": ", 1)[1]) in others]
    assert_none(found)


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_the_domain_is_pure(service: str) -> None:
    """A domain module imports the standard library, pure value libraries (pydantic,
    jsonschema), the contracts and its own domain (and its package's errors): no gRPC, Kafka,
    HTTP, storage, tracing or chassis."""
    package = SERVICES[service]
    root = REPO / "services" / service / "src" / package / "domain"
    own = (f"{package}.domain", f"{package}.errors")
    assert_none(violations(root, STDLIB | PURE | {"keel_contracts"}, own))


def test_applications_use_only_the_public_api_of_services() -> None:
    """``keel_agent_loop`` is fine; ``keel_agent_loop.domain.loop`` is reaching in."""
    found = []
    for root in sorted(REPO.glob("apps/*/src/keel_*")):
        for path in sorted(root.rglob("*.py")):
            for line, module in imports(path):
                if top(module) in SERVICE_PACKAGES and "." in module:
                    found.append(f"{path.relative_to(REPO)}:{line}: {module}")
    assert_none(found)


def test_libraries_never_import_applications_or_services() -> None:
    banned = SERVICE_PACKAGES | APP_PACKAGES
    found = []
    for lib in ("contracts", "core", "clients"):
        root = REPO / "libs" / lib / "src"
        found += [v for v in violations(root, set()) if top(v.rsplit(": ", 1)[1]) in banned]
    assert_none(found)
