"""Protobuf <-> domain conversions for the policy service."""

from __future__ import annotations

import json
from typing import Any

from keel.policy.v1 import policy_pb2
from keel_contracts.errors import InvalidArgument
from keel_policy.domain.models import Decision, Rule
from keel_policy.domain.results import Explanation, RuleTrace, Verdict

TO_PROTO: dict[Decision, policy_pb2.Decision.ValueType] = {
    "allow": policy_pb2.DECISION_ALLOW,
    "deny": policy_pb2.DECISION_DENY,
    "require_approval": policy_pb2.DECISION_REQUIRE_APPROVAL,
}


# Tool names are identifiers (MCP ones included): longer is not a name.
MAX_TOOL_NAME_CHARS = 256


def tool_name_of(name: str) -> str:
    if len(name) > MAX_TOOL_NAME_CHARS:
        raise InvalidArgument(f"tool_name is longer than {MAX_TOOL_NAME_CHARS} characters")
    return name


def arguments_from_json(arguments_json: str) -> dict[str, Any]:
    try:
        arguments = json.loads(arguments_json or "{}")
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"arguments_json is not JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise InvalidArgument("arguments_json must be a JSON object")
    return arguments


def rule_to_proto(rule: Rule) -> policy_pb2.Rule:
    return policy_pb2.Rule(
        id=rule.id,
        priority=rule.priority,
        tool=rule.tool,
        decision=TO_PROTO[rule.decision],
        description=rule.description,
    )


def verdict_to_proto(verdict: Verdict) -> policy_pb2.EvaluateResponse:
    return policy_pb2.EvaluateResponse(
        decision=TO_PROTO[verdict.decision],
        rule_id=verdict.rule_id,
        reason=verdict.reason,
        policy_set=verdict.policy_set,
    )


def _trace_to_proto(trace: RuleTrace) -> policy_pb2.RuleTrace:
    return policy_pb2.RuleTrace(
        rule_id=trace.rule_id,
        priority=trace.priority,
        tool=trace.tool,
        decision=TO_PROTO[trace.decision],
        matched=trace.matched,
        reason=trace.reason,
        conditions=[
            policy_pb2.ConditionTrace(condition=c.condition, passed=c.passed, detail=c.detail)
            for c in trace.conditions
        ],
    )


def explanation_to_proto(explanation: Explanation) -> policy_pb2.ExplainResponse:
    reply = policy_pb2.ExplainResponse(
        verdict=verdict_to_proto(explanation.verdict),
        rules=[_trace_to_proto(trace) for trace in explanation.rules],
        selection=list(explanation.selection),
    )
    if explanation.shadow is not None:
        reply.shadow.CopyFrom(verdict_to_proto(explanation.shadow))
    return reply
