"""Structural half of the bypass proof for fallbacks: an alternative tool is run only as
``_fallback_for`` picked it, and ``_fallback_for`` returns a pick only after the alternative's
own policy decision passed ``_refusal`` and its audit record was written."""

import ast
from pathlib import Path

import keel_tool_gateway

EXECUTION = Path(keel_tool_gateway.__file__).parent / "domain" / "execution.py"


def _method(name: str) -> ast.AsyncFunctionDef:
    tree = ast.parse(EXECUTION.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ExecutionService")
    return next(n for n in cls.body if isinstance(n, ast.AsyncFunctionDef) and n.name == name)


def _calls(node: ast.AST) -> list[tuple[int, str]]:
    return sorted(
        (n.lineno, ast.unparse(n.func)) for n in ast.walk(node) if isinstance(n, ast.Call)
    )


def test_an_alternative_runs_only_when_fallback_for_picked_it() -> None:
    decide = _method("_decide_and_run")
    branch = next(
        n
        for n in ast.walk(decide)
        if isinstance(n, ast.If) and ast.unparse(n.test) == "isinstance(picked, _Outcome)"
    )
    # The answer instead of a pick is returned as is; only the else branch runs something.
    assert not [f for _, f in _calls(ast.Module(branch.body, [])) if f == "self._run"]
    assert [f for _, f in _calls(ast.Module(branch.orelse, [])) if f == "self._run"] == [
        "self._run"
    ]
    picked_from = [f for _, f in _calls(decide) if f == "self._fallback_for"]
    assert picked_from == ["self._fallback_for"]


def test_fallback_for_picks_only_after_policy_audit_and_refusal_check() -> None:
    pick = _method("_fallback_for")
    order = [func for _, func in _calls(pick)]
    assert "self._run" not in order
    policy_at = order.index("self._policy.evaluate")
    audit_at = order.index("fallbacks.on_fallback")
    refusal_at = order.index("_refusal")
    assert policy_at < audit_at < refusal_at
    guard = next(
        n
        for n in ast.walk(pick)
        if isinstance(n, ast.If) and ast.unparse(n.test) == "refusal is not None"
    )
    assert isinstance(guard.body[-1], ast.Return)
    # Every failure of the decision or of the audit returns before a pick.
    handlers = [n for n in ast.walk(pick) if isinstance(n, ast.ExceptHandler)]
    assert len(handlers) == 2
    assert all(isinstance(h.body[-1], ast.Return) for h in handlers)
    # The only tuple returned (a pick) comes after the refusal check.
    picks = [
        n for n in ast.walk(pick) if isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple)
    ]
    assert [ast.unparse(n.value) for n in picks] == ["(alt, verdict)"]
    assert picks[0].lineno > guard.lineno
