"""The policy port over gRPC: ``keel.policy.v1.PolicyService/Evaluate`` with a deadline."""

from __future__ import annotations

import json
from typing import Any

import grpc
from opentelemetry.trace import SpanKind

from keel.common.v1 import common_pb2
from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_contracts.errors import Unavailable
from keel_core.grpc import call_with_errors
from keel_core.tracing import start_span
from keel_tool_gateway.domain.models import Decision, PolicyVerdict, RequestContext

_FROM_PROTO: dict[int, Decision] = {
    policy_pb2.DECISION_ALLOW: "allow",
    policy_pb2.DECISION_DENY: "deny",
    policy_pb2.DECISION_REQUIRE_APPROVAL: "require_approval",
}


class PolicyClient:
    """Owns no channel: the composition root creates it once and closes it on stop."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = policy_pb2_grpc.PolicyServiceStub(channel)
        self._timeout_s = timeout_s

    async def evaluate(
        self, ctx: RequestContext, tool: str, arguments: dict[str, Any]
    ) -> PolicyVerdict:
        request = policy_pb2.EvaluateRequest(
            context=common_pb2.RequestContext(
                session_id=ctx.session_id,
                agent_id=ctx.agent_id,
                tenant=ctx.tenant,
                agent_profile=ctx.agent_profile,
                traceparent=ctx.traceparent,
            ),
            tool_name=tool,
            arguments_json=json.dumps(arguments, ensure_ascii=False),
        )
        with start_span(
            "policy decision", kind=SpanKind.CLIENT, attributes={"keel.tool.name": tool}
        ) as span:
            reply: policy_pb2.EvaluateResponse = await call_with_errors(
                lambda: self._stub.Evaluate(request, timeout=self._timeout_s)
            )
            decision = _FROM_PROTO.get(reply.decision)
            span.set_attribute("keel.policy.decision", decision or "none")
            span.set_attribute("keel.policy.rule_id", reply.rule_id)
        if decision is None:
            # A reply without a decision is no permission: the caller fails closed.
            raise Unavailable(f"policy returned no decision (rule {reply.rule_id!r})")
        return PolicyVerdict(decision=decision, rule_id=reply.rule_id, reason=reply.reason)
