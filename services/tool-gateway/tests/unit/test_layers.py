"""The domain reads as the policy it enforces: it imports only the standard library, pydantic,
keel_contracts, itself and the package's errors, never I/O (grpc, kafka, httpx, keel_core,
the sandbox, tenacity). Read from the syntax trees, so a new import fails here."""

import ast
import sys
from pathlib import Path

import keel_tool_gateway

DOMAIN = Path(keel_tool_gateway.__file__).parent / "domain"
ALLOWED = ("pydantic", "keel_contracts", "keel_tool_gateway.domain", "keel_tool_gateway.errors")


def imported(tree: ast.Module) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def allowed(module: str) -> bool:
    top = module.split(".", 1)[0]
    if top in sys.stdlib_module_names or top == "__future__":
        return True
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


def test_the_domain_imports_no_io() -> None:
    paths = sorted(DOMAIN.rglob("*.py"))
    assert len(paths) > 5, "the scan is looking at the wrong folder"
    wrong = [
        f"{path.relative_to(DOMAIN)}: {module}"
        for path in paths
        for module in imported(ast.parse(path.read_text(), str(path)))
        if not allowed(module)
    ]
    assert not wrong, "the domain imports I/O:\n" + "\n".join(wrong)
