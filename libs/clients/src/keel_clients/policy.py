"""Client of ``keel.policy.v1.PolicyService``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

import grpc

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_clients.call import Caller, CallOptions, client_span
from keel_clients.mapping import context_to_proto
from keel_contracts.chat import RequestContext
from keel_contracts.errors import Unavailable
from keel_contracts.policy import Decision, PolicyRule, PolicyVerdict

DECISIONS: dict[policy_pb2.Decision.ValueType, Decision] = {
    policy_pb2.DECISION_ALLOW: "allow",
    policy_pb2.DECISION_DENY: "deny",
    policy_pb2.DECISION_REQUIRE_APPROVAL: "require_approval",
}


class ProvenanceFinding(Protocol):
    """A span of a string argument found in untrusted tool output (the tool gateway's
    ``domain.provenance.Finding`` has this shape)."""

    @property
    def path(self) -> str: ...
    @property
    def span(self) -> str: ...
    @property
    def sources(self) -> tuple[str, ...]: ...
    @property
    def in_task(self) -> bool: ...


def findings_to_proto(
    findings: Sequence[ProvenanceFinding],
) -> list[policy_pb2.ProvenanceFinding]:
    return [
        policy_pb2.ProvenanceFinding(
            path=f.path, span=f.span, sources=list(f.sources), in_task=f.in_task
        )
        for f in findings
    ]


class PolicyClient:
    """Owns no channel: the composition root opens it and closes it on stop."""

    def __init__(self, channel: grpc.aio.Channel, options: CallOptions | None = None) -> None:
        self._stub = policy_pb2_grpc.PolicyServiceStub(channel)
        self._caller = Caller(options or CallOptions())

    async def evaluate(
        self,
        ctx: RequestContext,
        tool: str,
        arguments: dict[str, Any],
        *,
        idempotency_key: str = "",
        provenance: Sequence[ProvenanceFinding] = (),
        approved: bool = False,
    ) -> PolicyVerdict:
        """A reply without a decision is no permission: it raises ``Unavailable`` so the
        caller fails closed. ``idempotency_key`` names the call, so running totals (policy
        state) count a call decided twice (an approved call sent again) once; ``provenance``
        says which spans of the arguments came from untrusted tool output; ``approved`` that the
        caller verified a person's approval of this call (it runs on REQUIRE_APPROVAL)."""
        request = policy_pb2.EvaluateRequest(
            context=context_to_proto(ctx),
            tool_name=tool,
            arguments_json=json.dumps(arguments, ensure_ascii=False),
            idempotency_key=idempotency_key,
            approved=approved,
            provenance=findings_to_proto(provenance),
        )
        with client_span("policy decision", {"keel.tool.name": tool}) as span:
            reply = await self._caller.unary(self._stub.Evaluate, request, ctx)
            decision = DECISIONS.get(reply.decision)
            span.set_attribute("keel.policy.decision", decision or "none")
            span.set_attribute("keel.policy.rule_id", reply.rule_id)
        if decision is None:
            raise Unavailable(f"policy returned no decision (rule {reply.rule_id!r})")
        return PolicyVerdict(
            decision=decision,
            rule_id=reply.rule_id,
            reason=reply.reason,
            policy_set=reply.policy_set,
        )

    async def explain_rules(self, profile: str, tenant: str = "") -> list[PolicyRule]:
        request = policy_pb2.ExplainRulesRequest(agent_profile=profile, tenant=tenant)
        reply = await self._caller.unary(self._stub.ExplainRules, request)
        return [
            PolicyRule(
                id=rule.id,
                priority=rule.priority,
                tool=rule.tool,
                decision=DECISIONS.get(rule.decision),
                description=rule.description,
            )
            for rule in reply.rules
        ]
