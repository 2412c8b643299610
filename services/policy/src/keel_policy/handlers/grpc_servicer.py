"""gRPC front of the policy engine: every evaluation is decided, counted and audited."""

from __future__ import annotations

import json
from typing import Any

import grpc

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts.errors import InvalidArgument
from keel_core.audit import AuditEmitter
from keel_core.redaction import redact
from keel_core.tracing import set_attributes
from keel_policy.domain.engine import PolicyEngine
from keel_policy.domain.holder import PolicyHolder
from keel_policy.domain.results import Verdict
from keel_policy.handlers.mapping import explanation_to_proto, rule_to_proto, verdict_to_proto
from keel_policy.metrics import PolicyMetrics


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    """Reads the policy in force from ``policy`` on every call, so a hot reload takes effect
    on the next request; a bare engine is held fixed (tests, embedding)."""

    def __init__(
        self, policy: PolicyEngine | PolicyHolder, audit: AuditEmitter, metrics: PolicyMetrics
    ) -> None:
        self._holder = policy if isinstance(policy, PolicyHolder) else PolicyHolder(policy)
        self._audit = audit
        self._metrics = metrics

    async def Evaluate(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.EvaluateResponse:
        arguments = _arguments(request.arguments_json)
        ctx = request.context
        profile = ctx.agent_profile or "default"
        outcome = self._holder.engine.decide(request.tool_name, arguments, profile, ctx.tenant)
        verdict = outcome.verdict
        self._metrics.decisions.labels(verdict.decision, verdict.rule_id, verdict.policy_set).inc()
        set_attributes(
            {
                "keel.tool.name": request.tool_name,
                "keel.policy.decision": verdict.decision,
                "keel.policy.rule_id": verdict.rule_id,
                "keel.policy.set": verdict.policy_set,
            }
        )
        details = _details(ctx, request.tool_name, arguments, verdict)
        await self._audit.record(
            "policy.decision",
            actor=ctx.agent_id or "unknown",
            subject=request.tool_name,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details=details,
        )
        if outcome.shadow is not None:
            await self._audit_shadow(ctx, request.tool_name, details, verdict, outcome.shadow)
        return verdict_to_proto(verdict)

    async def Explain(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ExplainResponse:
        arguments = _arguments(request.arguments_json)
        ctx = request.context
        explanation = self._holder.engine.explain(
            request.tool_name, arguments, ctx.agent_profile or "default", ctx.tenant
        )
        return explanation_to_proto(explanation)

    async def ExplainRules(
        self, request: policy_pb2.ExplainRulesRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ExplainRulesResponse:
        name, rules = self._holder.engine.rules_for(request.agent_profile, request.tenant)
        return policy_pb2.ExplainRulesResponse(
            rules=[rule_to_proto(rule) for rule in rules], policy_set=name
        )

    async def _audit_shadow(
        self,
        ctx: common_pb2.RequestContext,
        tool: str,
        details: dict[str, Any],
        enforced: Verdict,
        shadow: Verdict,
    ) -> None:
        agrees = shadow.decision == enforced.decision
        self._metrics.shadow_decisions.labels(enforced.policy_set, str(agrees).lower()).inc()
        await self._audit.record(
            "policy.shadow_decision",
            actor=ctx.agent_id or "unknown",
            subject=tool,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details={
                **details,
                "decision": shadow.decision,
                "rule": shadow.rule_id,
                "reason": shadow.reason,
                "policy_set": shadow.policy_set,
                "enforced_decision": enforced.decision,
                "enforced_rule": enforced.rule_id,
                "agrees": agrees,
            },
        )


def _arguments(arguments_json: str) -> dict[str, Any]:
    try:
        arguments = json.loads(arguments_json or "{}")
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidArgument(f"arguments_json is not JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise InvalidArgument("arguments_json must be a JSON object")
    return arguments


def _details(
    ctx: common_pb2.RequestContext, tool: str, arguments: dict[str, Any], verdict: Verdict
) -> dict[str, Any]:
    return {
        "decision": verdict.decision,
        "rule": verdict.rule_id,
        "reason": verdict.reason,
        "policy_set": verdict.policy_set,
        "tool": tool,
        "agent": ctx.agent_id,
        "tenant": ctx.tenant,
        "profile": ctx.agent_profile,
        "arguments": redact(arguments),
    }
