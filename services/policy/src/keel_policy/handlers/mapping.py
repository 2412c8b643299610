"""Protobuf <-> domain conversions for the policy service."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from keel.policy.v1 import policy_pb2
from keel_contracts.errors import InvalidArgument
from keel_policy.domain.models import Decision, Rule
from keel_policy.domain.provenance import Finding
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


# Bounds on what a caller may send about provenance: a decision reads at most this much.
MAX_FINDINGS = 256
MAX_SPAN_CHARS = 200
MAX_SOURCES = 16


def findings_from_proto(findings: Iterable[policy_pb2.ProvenanceFinding]) -> tuple[Finding, ...]:
    """The caller's provenance findings, bounded (more than ``MAX_FINDINGS`` is refused: a
    decision must not read an unbounded list)."""
    found = list(findings)
    if len(found) > MAX_FINDINGS:
        raise InvalidArgument(f"provenance holds more than {MAX_FINDINGS} findings")
    return tuple(
        Finding(
            path=f.path[:MAX_SPAN_CHARS],
            span=f.span[:MAX_SPAN_CHARS],
            sources=tuple(f.sources[:MAX_SOURCES]),
            in_task=f.in_task,
        )
        for f in found
    )


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
