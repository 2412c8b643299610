"""Structural half of the bypass proof: the only code that can start a tool is
``ExecutionService`` after the policy decision.

Read from the package's syntax trees, so a new module that calls a tool's ``run`` (or the
private ``_invoke``) anywhere else fails here before it can ship.
"""

import ast
from pathlib import Path

import keel_tool_gateway

PACKAGE = Path(keel_tool_gateway.__file__).parent
EXECUTION = PACKAGE / "domain" / "execution.py"


def modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))]


def enclosing_functions(tree: ast.Module) -> dict[ast.AST, list[str]]:
    """Each node -> the names of the functions (and classes) it sits in, outermost first."""
    scopes: dict[ast.AST, list[str]] = {}

    def visit(node: ast.AST, stack: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            inner = stack
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                inner = [*stack, child.name]
            scopes[child] = inner
            visit(child, inner)

    visit(tree, [])
    return scopes


def receiver(node: ast.Attribute) -> str:
    return ast.unparse(node.value)


def tool_run_references() -> list[tuple[Path, int, list[str]]]:
    """Every ``<something tool-like>.run``: a receiver named like a tool, or a parameter or
    variable annotated as ``Tool``."""
    found = []
    for path, tree in modules():
        scopes = enclosing_functions(tree)
        tool_names = {"tool"}
        for node in ast.walk(tree):
            if isinstance(node, ast.arg) and node.annotation is not None:
                if "Tool[" in ast.unparse(node.annotation) or ast.unparse(node.annotation) in (
                    "Tool",
                    "ResilientTool",
                ):
                    tool_names.add(node.arg)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "run":
                name = receiver(node)
                last = name.rsplit(".", 1)[-1].lstrip("_").lower()
                if name in tool_names or last.endswith("tool"):
                    found.append((path, node.lineno, scopes.get(node, [])))
    return found


def test_only_invoke_touches_a_tools_run() -> None:
    refs = tool_run_references()
    outside = [
        f"{path.relative_to(PACKAGE)}:{line} in {'.'.join(scope) or '<module>'}"
        for path, line, scope in refs
        if not (path == EXECUTION and scope == ["_invoke"])
    ]
    assert not outside, "a tool is run outside ExecutionService:\n" + "\n".join(outside)
    assert refs, "the scan found no call at all: it is looking at the wrong code"


def test_invoke_is_called_only_from_the_run_after_the_decision() -> None:
    callers = []
    for path, tree in modules():
        scopes = enclosing_functions(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "_invoke":
                callers.append((path, scopes.get(node, [])))
            if isinstance(node, ast.Attribute) and node.attr == "_invoke":
                callers.append((path, scopes.get(node, [])))
            if isinstance(node, ast.ImportFrom):
                assert "_invoke" not in [a.name for a in node.names], path
    assert callers == [(EXECUTION, ["ExecutionService", "_run", "attempt"])]


def _method(name: str) -> ast.AsyncFunctionDef:
    tree = ast.parse(EXECUTION.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ExecutionService")
    return next(n for n in cls.body if isinstance(n, ast.AsyncFunctionDef) and n.name == name)


def _calls(node: ast.AST) -> list[tuple[int, str]]:
    return sorted(
        (n.lineno, ast.unparse(n.func)) for n in ast.walk(node) if isinstance(n, ast.Call)
    )


def test_run_is_reached_only_after_policy_and_the_refusal_check() -> None:
    # ExecutionService._run (other classes may have their own ``_run``).
    runs = [
        node.lineno
        for node in ast.walk(ast.parse(EXECUTION.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "_run" and receiver(node) == "self"
    ]
    decide = _method("_decide_and_run")
    assert runs == [line for line, func in _calls(decide) if func == "self._run"], (
        "self._run is called outside _decide_and_run"
    )
    order = [func for _, func in _calls(decide)]
    policy_at = order.index("self._policy.evaluate")
    refusal_at = order.index("_refusal")
    run_at = order.index("self._run")
    assert policy_at < refusal_at < run_at
    # The refusal is acted on: `if refusal is not None: return refusal` comes before the run.
    guard = next(
        n
        for n in ast.walk(decide)
        if isinstance(n, ast.If) and ast.unparse(n.test) == "refusal is not None"
    )
    assert isinstance(guard.body[0], ast.Return)
    run_line = next(line for line, func in _calls(decide) if func == "self._run")
    assert guard.lineno < run_line
    # Policy failures return before the run too.
    handler = next(n for n in ast.walk(decide) if isinstance(n, ast.ExceptHandler))
    assert any(isinstance(n, ast.Return) for n in handler.body)


def test_refusal_lets_through_only_allow_and_verified_approval() -> None:
    tree = ast.parse(EXECUTION.read_text())
    refusal = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_refusal")
    passes = [
        ast.unparse(n.test)
        for n in ast.walk(refusal)
        if isinstance(n, ast.If)
        and isinstance(n.body[0], ast.Return)
        and isinstance(n.body[0].value, ast.Constant)
        and n.body[0].value.value is None
    ]
    assert passes == [
        "verdict.decision == 'allow'",
        "verdict.decision == 'require_approval' and approval.outcome in _VERIFIED",
    ]
    last = refusal.body[-1]
    # It must end by refusing (fail closed), not by letting the call through.
    assert isinstance(last, ast.Return)
    assert not (isinstance(last.value, ast.Constant) and last.value.value is None)
