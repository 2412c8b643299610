"""Protobuf <-> domain conversions for the policy service."""

from __future__ import annotations

from keel.policy.v1 import policy_pb2
from keel_policy.domain.models import Decision, Rule

TO_PROTO: dict[Decision, policy_pb2.Decision.ValueType] = {
    "allow": policy_pb2.DECISION_ALLOW,
    "deny": policy_pb2.DECISION_DENY,
    "require_approval": policy_pb2.DECISION_REQUIRE_APPROVAL,
}


def rule_to_proto(rule: Rule) -> policy_pb2.Rule:
    return policy_pb2.Rule(
        id=rule.id,
        priority=rule.priority,
        tool=rule.tool,
        decision=TO_PROTO[rule.decision],
        description=rule.description,
    )
