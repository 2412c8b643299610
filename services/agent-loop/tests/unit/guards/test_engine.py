"""The guard engine: each verdict, tool arguments, the escalation signals, and the file's
validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keel_agent_loop.domain import AgentState
from keel_agent_loop.domain.guarding import escalation_key
from keel_agent_loop.domain.models import ChatMessage
from keel_agent_loop.domain.prompts import new_approval_id
from keel_agent_loop.errors import GuardsFileError
from keel_agent_loop.guards import GuardEngine, GuardsDocument, explain_guards, load_guards
from keel_contracts.chat import ToolCall

RULES = {
    "rules": [
        {"id": "api-key", "match": "answer", "regex": r"sk-[A-Za-z0-9]{16,}", "verdict": "redact"},
        {"id": "words", "match": "answer", "deny_terms": ["Project Zeus"], "verdict": "redact"},
        {"id": "too-long", "match": "answer", "max_length": 200, "verdict": "block"},
        {
            "id": "legal",
            "match": "answer",
            "deny_terms": ["lawsuit"],
            "verdict": "require_approval",
            "reason": "legal topics need a person",
        },
        {
            "id": "mail-secrets",
            "match": "send_*",
            "regex": r"sk-[A-Za-z0-9]{16,}",
            "verdict": "redact",
        },
        {"id": "no-rm", "match": "shell", "regex": r"rm\s+-rf", "verdict": "block"},
        {
            "id": "big-payments",
            "match": "pay",
            "json_schema": {
                "type": "object",
                "properties": {"amount": {"type": "number", "maximum": 100}},
            },
            "verdict": "require_approval",
        },
    ],
    "escalation": {
        "hedging": ["I am not sure"],
        "confidence": {"field": "confidence", "below": 0.5},
        "tool_errors": 2,
        "budget_percent": 75,
        "out_of_profile": 2,
    },
}
KEY = "sk-" + "A1b2" * 5


def engine(data: dict[str, object] = RULES) -> GuardEngine:
    return GuardEngine(GuardsDocument.model_validate(data))


def test_an_answer_no_rule_matches_passes_unchanged() -> None:
    decision = engine().check_answer("The answer is 42.")
    assert (decision.verdict, decision.text, decision.hits) == ("pass", "The answer is 42.", ())


def test_redact_replaces_every_matched_span_of_every_redacting_rule() -> None:
    decision = engine().check_answer(f"use {KEY} for project zeus, and {KEY} again")
    assert decision.verdict == "redact"
    assert decision.text == "use [redacted] for [redacted], and [redacted] again"
    assert {h.rule_id for h in decision.hits} == {"api-key", "words"}


def test_block_wins_over_redact_and_names_its_rule() -> None:
    decision = engine().check_answer(KEY + " " + "x" * 300)
    assert decision.verdict == "block"
    assert decision.rule_id == "too-long"
    assert "more than 200" in decision.reason


def test_require_approval_carries_the_rules_reason() -> None:
    decision = engine().check_answer("This could end in a lawsuit.")
    assert (decision.verdict, decision.rule_id) == ("require_approval", "legal")
    assert decision.reason == "legal topics need a person"


def test_a_schema_rule_checks_structured_answers_and_refuses_prose() -> None:
    shaped = engine(
        {
            "rules": [
                {
                    "id": "shape",
                    "match": "answer",
                    "json_schema": {"type": "object", "required": ["total"]},
                    "verdict": "block",
                }
            ]
        }
    )
    assert shaped.check_answer('{"total": 3}').verdict == "pass"
    assert "'total' is a required property" in shaped.check_answer('{"sum": 3}').reason
    assert "not JSON" in shaped.check_answer("three").reason


def test_tool_arguments_are_redacted_inside_string_values_and_stay_json() -> None:
    call = ToolCall(name="send_email", arguments_json=json.dumps({"to": "a@b", "body": KEY}))
    decision = engine().check_tool(call)
    assert decision.verdict == "redact"
    assert json.loads(decision.text) == {"to": "a@b", "body": "[redacted]"}


def test_tool_rules_apply_by_glob_only_to_their_tools() -> None:
    assert (
        engine().check_tool(ToolCall(name="shell", arguments_json='{"c": "rm -rf /"}')).verdict
        == "block"
    )
    assert (
        engine().check_tool(ToolCall(name="calc", arguments_json='{"c": "rm -rf /"}')).verdict
        == "pass"
    )
    big = engine().check_tool(ToolCall(name="pay", arguments_json='{"amount": 500}'))
    assert (big.verdict, big.rule_id) == ("require_approval", "big-payments")
    assert (
        engine().check_tool(ToolCall(name="pay", arguments_json='{"amount": 5}')).verdict == "pass"
    )


def test_hedging_and_low_confidence_answers_escalate() -> None:
    hedged = engine().check_answer("I am NOT sure, maybe 42.")
    assert (hedged.verdict, hedged.rule_id) == ("require_approval", "escalation.hedging")
    low = engine().check_answer('{"answer": "42", "confidence": 0.3}')
    assert (low.verdict, low.rule_id) == ("require_approval", "escalation.confidence")
    assert engine().check_answer("42 (confidence: 0.9)").verdict == "pass"
    assert engine().check_answer("42 (confidence: 0.2)").rule_id == "escalation.confidence"


def test_escalation_sees_the_redacted_answer() -> None:
    decision = engine().check_answer(f"I am not sure: {KEY}")
    assert decision.verdict == "require_approval"
    assert KEY not in decision.text


def state_with(*messages: ChatMessage, iteration: int = 1, max_iterations: int = 8) -> AgentState:
    state = AgentState(
        session_id="s1", goal="g", iteration=iteration, max_iterations=max_iterations
    )
    state.messages.extend(messages)
    return state


def failing(n: int) -> list[ChatMessage]:
    call = ToolCall(id="c", name="calc", arguments_json="{}")
    out: list[ChatMessage] = []
    for _ in range(n):
        out.append(ChatMessage(role="assistant", content="", tool_calls=(call,)))
        out.append(ChatMessage(role="tool", content="ERROR: boom", tool_call_id="c", name="calc"))
    return out


def test_consecutive_tool_errors_escalate_once_per_streak() -> None:
    offered = frozenset({"calc"})
    assert engine().check_progress(state_with(*failing(1)), offered).verdict == "pass"
    state = state_with(*failing(2))
    decision = engine().check_progress(state, offered)
    assert (decision.verdict, decision.rule_id) == ("require_approval", "escalation.tool_errors")
    # Approved by a person: the same streak does not ask again.
    state.decided_approvals.append(new_approval_id(decision.key))
    assert engine().check_progress(state, offered).verdict == "pass"
    ok = ChatMessage(role="tool", content="fine", tool_call_id="c", name="calc")
    assert engine().check_progress(state_with(*failing(2), ok), offered).verdict == "pass"


def test_a_nearly_spent_budget_escalates() -> None:
    offered = frozenset({"calc"})
    assert engine().check_progress(state_with(iteration=5), offered).verdict == "pass"
    decision = engine().check_progress(state_with(iteration=6), offered)
    assert decision.rule_id == "escalation.budget"
    assert decision.key == escalation_key("s1", "budget")
    assert "6 of 8 iterations" in decision.reason


def test_repeated_calls_of_tools_the_profile_does_not_offer_escalate() -> None:
    call = ToolCall(id="c", name="wire_money", arguments_json="{}")
    asked = ChatMessage(role="assistant", content="", tool_calls=(call,))
    offered = frozenset({"calc"})
    assert engine().check_progress(state_with(asked), offered).verdict == "pass"
    decision = engine().check_progress(state_with(asked, asked), offered)
    assert decision.rule_id == "escalation.out_of_profile"
    assert "wire_money" in decision.reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [{id: a, match: answer, verdict: block}]\n", "a rule needs a check"),
        ("rules:\n  - {id: a, match: answer, regex: '(', verdict: block}\n", ":2: rules.0.regex"),
        (
            "rules: [{id: a, match: answer, max_length: 3, verdict: redact}]\n",
            "redact replaces matched spans",
        ),
        ("rules: [{id: a, match: answer, regex: x, verdict: maybe}]\n", "rules.0.verdict"),
        (
            "rules:\n - {id: a, match: answer, regex: x, verdict: block}\n"
            " - {id: a, match: answer, regex: y, verdict: block}\n",
            "used twice",
        ),
        ("escalation: {budget_percent: 150}\n", "escalation.budget_percent"),
        (
            "rules: [{id: a, match: answer, json_schema: {type: 7}, verdict: block}]\n",
            "JSON Schema",
        ),
    ],
)
def test_a_bad_file_is_refused_with_file_line_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "guards.yaml"
    path.write_text(text)
    with pytest.raises(GuardsFileError, match=expected) as caught:
        load_guards(path)
    assert str(path) in str(caught.value)


def test_explain_names_each_rule_that_matched_and_why(tmp_path: Path) -> None:
    path = tmp_path / "guards.yaml"
    path.write_text(
        "rules:\n  - {id: api-key, match: answer, regex: 'sk-\\w+', verdict: redact}\n"
        "  - {id: no-rm, match: shell, regex: 'rm -rf', verdict: block, reason: destructive}\n"
    )
    verdict, text = explain_guards(path, answer="key sk-abc here")
    assert verdict == "redact"
    assert text.splitlines() == [
        "answer: redact",
        "  rule api-key (redact): matches /sk-\\w+/",
        "  result: key [redacted] here",
    ]
    verdict, blocked = explain_guards(path, tool="shell", args='{"cmd": "rm -rf /"}')
    assert verdict == "block"
    assert "tool shell: block" in blocked
    assert "rule no-rm (block): destructive" in blocked
    assert explain_guards(path, answer="fine") == ("pass", "answer: pass\n  no rule matched")
