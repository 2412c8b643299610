"""gRPC front of the policy engine: every evaluation is decided, counted and audited."""

from __future__ import annotations

import json

import grpc

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_core.audit import AuditEmitter
from keel_core.errors import InvalidArgument
from keel_core.redaction import redact
from keel_policy.domain.engine import PolicyEngine
from keel_policy.handlers.mapping import TO_PROTO, rule_to_proto
from keel_policy.metrics import PolicyMetrics


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, engine: PolicyEngine, audit: AuditEmitter, metrics: PolicyMetrics) -> None:
        self._engine = engine
        self._audit = audit
        self._metrics = metrics

    async def Evaluate(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.EvaluateResponse:
        try:
            arguments = json.loads(request.arguments_json or "{}")
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"arguments_json is not JSON: {exc}") from exc
        if not isinstance(arguments, dict):
            raise InvalidArgument("arguments_json must be a JSON object")
        ctx = request.context
        profile = ctx.agent_profile or "default"
        verdict = self._engine.evaluate(request.tool_name, arguments, profile)
        self._metrics.decisions.labels(verdict.decision, verdict.rule_id).inc()
        await self._audit.record(
            "policy.decision",
            actor=ctx.agent_id or "unknown",
            subject=request.tool_name,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details={
                "decision": verdict.decision,
                "rule": verdict.rule_id,
                "profile": ctx.agent_profile,
                "arguments": redact(arguments),
            },
        )
        return policy_pb2.EvaluateResponse(
            decision=TO_PROTO[verdict.decision], rule_id=verdict.rule_id, reason=verdict.reason
        )

    async def ExplainRules(
        self, request: policy_pb2.ExplainRulesRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ExplainRulesResponse:
        profile = request.agent_profile
        rules = [
            rule_to_proto(rule)
            for rule in self._engine.rules
            if not profile or "*" in rule.profiles or profile in rule.profiles
        ]
        return policy_pb2.ExplainRulesResponse(rules=rules)
