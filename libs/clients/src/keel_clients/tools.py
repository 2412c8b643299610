"""Client of ``keel.tool.v1.ToolGateway``."""

from __future__ import annotations

import grpc

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_clients.call import Caller, CallOptions, client_span
from keel_clients.mapping import call_to_proto, context_to_proto
from keel_contracts.chat import RequestContext, ToolCall, ToolSpec
from keel_contracts.tools import ToolOutcome, ToolStatus
from keel_core import semconv

EXECUTE_STATUS: dict[tool_pb2.ExecuteStatus.ValueType, ToolStatus] = {
    tool_pb2.EXECUTE_STATUS_OK: "ok",
    tool_pb2.EXECUTE_STATUS_ERROR: "error",
    tool_pb2.EXECUTE_STATUS_DENIED: "denied",
    tool_pb2.EXECUTE_STATUS_NEEDS_APPROVAL: "needs_approval",
}


class ToolClient:
    """Owns no channel: the composition root opens it and closes it on stop."""

    def __init__(self, channel: grpc.aio.Channel, options: CallOptions | None = None) -> None:
        self._stub = tool_pb2_grpc.ToolGatewayStub(channel)
        self._caller = Caller(options or CallOptions())

    async def list_tools(self, profile: str) -> list[ToolSpec]:
        request = tool_pb2.ListToolsRequest(agent_profile=profile)
        response = await self._caller.unary(self._stub.ListTools, request)
        return [spec_from_proto(t) for t in response.tools]

    async def execute(
        self,
        ctx: RequestContext,
        call: ToolCall,
        idempotency_key: str,
        approval_id: str = "",
        *,
        task_text: str = "",
    ) -> ToolOutcome:
        """Run ``call`` once per ``idempotency_key``; ``approval_id`` names the approval of a
        call that needed one (the gateway verifies it and may run modified arguments);
        ``task_text`` is the session's task, the trusted text provenance checks compare with."""
        request = tool_pb2.ExecuteRequest(
            context=context_to_proto(ctx),
            call=call_to_proto(call),
            idempotency_key=idempotency_key,
            approval_id=approval_id,
            task_text=task_text,
        )
        attributes = {
            semconv.OPERATION: semconv.EXECUTE_TOOL,
            semconv.TOOL_NAME: call.name,
            semconv.TOOL_TYPE: "function",
            semconv.TOOL_CALL_ID: call.id,
            semconv.CONVERSATION_ID: ctx.session_id,
            "keel.idempotency_key": idempotency_key,
            "keel.approval_id": approval_id,
        }
        with client_span(f"execute_tool {call.name}", attributes) as span:
            response = await self._caller.unary(self._stub.Execute, request, ctx)
            outcome = outcome_from_proto(response)
            span.set_attribute("keel.tool.status", outcome.status)
            return outcome


def spec_from_proto(tool: tool_pb2.ToolDescriptor) -> ToolSpec:
    return ToolSpec(
        name=tool.name,
        description=tool.description,
        parameters_json_schema=tool.parameters_json_schema or "{}",
    )


def outcome_from_proto(response: tool_pb2.ExecuteResponse) -> ToolOutcome:
    status = EXECUTE_STATUS.get(response.status)
    if status is None:
        return ToolOutcome(status="error", error="the tool gateway answered without a status")
    return ToolOutcome(
        status=status,
        output=response.output,
        error=response.error,
        rule_id=response.policy_rule,
        duration_ms=response.duration_ms,
    )
