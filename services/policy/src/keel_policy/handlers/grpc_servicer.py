"""gRPC front of the policy service: protobuf in, a ``PolicyDecisions`` call, protobuf out."""

from __future__ import annotations

import grpc

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_clients.mapping import context_from_proto
from keel_policy.handlers.mapping import (
    arguments_from_json,
    explanation_to_proto,
    findings_from_proto,
    rule_to_proto,
    tool_name_of,
    verdict_to_proto,
)
from keel_policy.usecase import PolicyDecisions


class PolicyServicer(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, decisions: PolicyDecisions) -> None:
        self._decisions = decisions

    async def Evaluate(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.EvaluateResponse:
        verdict = await self._decisions.decide(
            tool_name_of(request.tool_name),
            arguments_from_json(request.arguments_json),
            context_from_proto(request.context),
            request.idempotency_key,
            findings_from_proto(request.provenance),
            approved=request.approved,
        )
        return verdict_to_proto(verdict)

    async def Explain(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ExplainResponse:
        explanation = self._decisions.explain(
            tool_name_of(request.tool_name),
            arguments_from_json(request.arguments_json),
            context_from_proto(request.context),
            findings_from_proto(request.provenance),
        )
        return explanation_to_proto(explanation)

    async def ExplainRules(
        self, request: policy_pb2.ExplainRulesRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.ExplainRulesResponse:
        name, rules = self._decisions.rules_for(request.agent_profile, request.tenant)
        return policy_pb2.ExplainRulesResponse(
            rules=[rule_to_proto(rule) for rule in rules], policy_set=name
        )
