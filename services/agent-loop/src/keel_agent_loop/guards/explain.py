"""``keel guards test``: what the service would decide, in words (every rule that matched,
why, the verdict that wins and the text that would go on)."""

from __future__ import annotations

from pathlib import Path

from keel_agent_loop.domain.guarding import GuardDecision
from keel_agent_loop.guards.loader import load_guards
from keel_contracts.chat import ToolCall


def explain_guards(
    path: Path, *, answer: str | None = None, tool: str = "", args: str = "{}"
) -> tuple[str, str]:
    """Load ``path`` (``GuardsFileError`` if it does not validate) and decide on ``answer``,
    or else on a call of ``tool`` with the arguments JSON ``args``: the verdict, and the
    explanation in words."""
    engine = load_guards(path)
    if answer is not None:
        decision = engine.check_answer(answer)
        return decision.verdict, describe("answer", decision)
    decision = engine.check_tool(ToolCall(name=tool, arguments_json=args))
    return decision.verdict, describe(f"tool {tool}", decision)


def describe(subject: str, decision: GuardDecision) -> str:
    lines = [f"{subject}: {decision.verdict}"]
    if not decision.hits:
        lines.append("  no rule matched")
    for hit in decision.hits:
        lines.append(f"  rule {hit.rule_id} ({hit.verdict}): {hit.reason}")
    if decision.verdict == "redact":
        lines.append(f"  result: {decision.text}")
    elif decision.verdict != "pass":
        lines.append(f"  decided by: {decision.rule_id}")
    return "\n".join(lines)
