"""A fake policy service: a fixed decision per tool, deny for the rest (deny by default)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_clients.mapping import context_from_proto
from keel_clients.policy import DECISIONS
from keel_contracts.chat import RequestContext
from keel_contracts.policy import Decision

TO_DECISION = {name: value for value, name in DECISIONS.items()}


@dataclass(frozen=True)
class Evaluation:
    ctx: RequestContext
    tool: str
    arguments: dict[str, Any]


class FakePolicyService(policy_pb2_grpc.PolicyServiceServicer):
    def __init__(self, decisions: Mapping[str, Decision] | None = None) -> None:
        self._decisions = dict(decisions or {})
        self.evaluations: list[Evaluation] = []

    async def Evaluate(
        self, request: policy_pb2.EvaluateRequest, context: grpc.aio.ServicerContext
    ) -> policy_pb2.EvaluateResponse:
        arguments = json.loads(request.arguments_json or "{}")
        self.evaluations.append(
            Evaluation(context_from_proto(request.context), request.tool_name, arguments)
        )
        decision = self._decisions.get(request.tool_name, "deny")
        rule = f"fake-{decision}" if request.tool_name in self._decisions else "default-deny"
        return policy_pb2.EvaluateResponse(
            decision=TO_DECISION[decision], rule_id=rule, policy_set="fake"
        )
