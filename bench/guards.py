"""Guard decision time in-process (docs/guards.md): µs per decision of the agent loop's guard
engine, the cost each final answer and each tool call pays before it goes on.

A guards file of 20 rules of the kinds people write — secret-shaped regexes (API keys, AWS
keys, private keys, card numbers, e-mail addresses), a denylist of 50 terms, a length limit,
a JSON Schema on a payment tool — and every escalation signal (5 hedging phrases, a
confidence field, tool errors, budget, out-of-profile). Cases:

- ``answer pass``: a 1,000-character answer no rule matches (every rule and signal checked);
- ``answer redact``: the same answer with two API keys in it (found and replaced);
- ``tool pass`` / ``tool redact``: a ``send_email`` call (three string arguments, ~300
  characters) that is clean, or carries a key;
- ``tool schema``: a ``pay`` call validated against its JSON Schema;
- ``progress``: the escalation signals of a session 6 iterations in, 12 messages of history.

Prints p50/p99 in µs per decision. Run: ``python bench/guards.py [--iterations N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from keel_agent_loop.domain.models import AgentState, ChatMessage
from keel_agent_loop.guards import GuardEngine, GuardsDocument
from keel_contracts.chat import ToolCall

TERMS = [f"codename-{i}" for i in range(50)]
SECRET_PATTERNS = {
    "api-key": r"sk-[A-Za-z0-9]{20,}",
    "aws-key": r"AKIA[0-9A-Z]{16}",
    "private-key": r"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "card-number": r"\b(?:\d[ -]?){13,16}\b",
    "email": r"[\w.+-]+@[\w-]+\.[\w.]+",
}


def document() -> GuardsDocument:
    rules: list[dict[str, object]] = []
    for name, regex in SECRET_PATTERNS.items():
        verdict = "block" if name == "private-key" else "redact"
        if name != "email":
            rules.append(
                {"id": f"answer-{name}", "match": "answer", "regex": regex, "verdict": verdict}
            )
        rules.append({"id": f"tool-{name}", "match": "send_*", "regex": regex, "verdict": "redact"})
    rules.append({"id": "codenames", "match": "answer", "deny_terms": TERMS, "verdict": "redact"})
    rules.append(
        {"id": "codenames-out", "match": "send_*", "deny_terms": TERMS, "verdict": "block"}
    )
    rules.append({"id": "length", "match": "answer", "max_length": 20_000, "verdict": "block"})
    rules.append(
        {
            "id": "payments",
            "match": "pay",
            "json_schema": {
                "type": "object",
                "required": ["to", "amount"],
                "properties": {
                    "to": {"type": "string"},
                    "amount": {"type": "number", "maximum": 500},
                },
            },
            "verdict": "require_approval",
        }
    )
    while len(rules) < 20:
        rules.append(
            {
                "id": f"shell-{len(rules)}",
                "match": "shell",
                "regex": r"rm\s+-rf",
                "verdict": "block",
            }
        )
    return GuardsDocument.model_validate(
        {
            "rules": rules,
            "escalation": {
                "hedging": [
                    "i am not sure",
                    "i'm not sure",
                    "i cannot be certain",
                    "i guess",
                    "it is unclear",
                ],
                "confidence": {"field": "confidence", "below": 0.5},
                "tool_errors": 3,
                "budget_percent": 90,
                "out_of_profile": 2,
            },
        }
    )


def session() -> AgentState:
    state = AgentState(session_id="s", goal="g", iteration=6, max_iterations=10)
    call = ToolCall(id="c", name="calculator", arguments_json='{"expression": "1+1"}')
    for _ in range(6):
        state.messages.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
        state.messages.append(
            ChatMessage(role="tool", content="2", tool_call_id="c", name="calculator")
        )
    return state


def timed(fn: Callable[[], object], iterations: int) -> tuple[float, float]:
    for _ in range(200):
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    engine = GuardEngine(document())
    clean = ("The quarterly numbers are in line with the forecast and the team is on track. " * 13)[
        :1000
    ]
    key = "sk-" + "Ab1" * 10
    dirty = clean[:400] + f" {key} " + clean[400:800] + f" {key}"
    mail = {"to": "bob at example", "subject": "Weekly report", "body": clean[:250]}
    state, offered = session(), frozenset({"calculator"})
    cases: dict[str, Callable[[], object]] = {
        "answer pass": lambda: engine.check_answer(clean),
        "answer redact": lambda: engine.check_answer(dirty),
        "tool pass": lambda: engine.check_tool(
            ToolCall(name="send_email", arguments_json=json.dumps(mail))
        ),
        "tool redact": lambda: engine.check_tool(
            ToolCall(name="send_email", arguments_json=json.dumps({**mail, "body": f"key {key}"}))
        ),
        "tool schema": lambda: engine.check_tool(
            ToolCall(name="pay", arguments_json='{"to": "acme", "amount": 120}')
        ),
        "progress": lambda: engine.check_progress(state, offered),
    }
    assert engine.check_answer(dirty).verdict == "redact"
    assert engine.check_answer(clean).verdict == "pass"
    print(f"guard decisions, {engine.rule_count} rules + escalation, {args.iterations} runs each")
    print(f"{'case':<16}{'p50 µs':>10}{'p99 µs':>10}")
    for name, fn in cases.items():
        p50, p99 = timed(fn, args.iterations)
        print(f"{name:<16}{p50:>10.1f}{p99:>10.1f}")


if __name__ == "__main__":
    main()
