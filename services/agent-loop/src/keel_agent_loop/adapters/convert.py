"""Protobuf <-> domain conversions for the clients of other services (the servicer's own live
in ``handlers/mapping.py``)."""

from __future__ import annotations

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2
from keel.tool.v1 import tool_pb2
from keel_agent_loop.domain.models import (
    ChatMessage,
    LLMReply,
    RequestContext,
    ToolCall,
    ToolOutcome,
    ToolSpec,
    ToolStatus,
    Usage,
)

EXECUTE_STATUS: dict[int, ToolStatus] = {
    tool_pb2.EXECUTE_STATUS_OK: "ok",
    tool_pb2.EXECUTE_STATUS_ERROR: "error",
    tool_pb2.EXECUTE_STATUS_DENIED: "denied",
    tool_pb2.EXECUTE_STATUS_NEEDS_APPROVAL: "needs_approval",
}


def context_to_proto(ctx: RequestContext) -> common_pb2.RequestContext:
    return common_pb2.RequestContext(
        session_id=ctx.session_id,
        agent_id=ctx.agent_id,
        tenant=ctx.tenant,
        agent_profile=ctx.agent_profile,
        traceparent=ctx.traceparent,
    )


def call_to_proto(call: ToolCall) -> common_pb2.ToolCall:
    return common_pb2.ToolCall(id=call.id, name=call.name, arguments_json=call.arguments_json)


def message_to_proto(message: ChatMessage) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(
        role=message.role,
        content=message.content,
        tool_calls=[call_to_proto(c) for c in message.tool_calls],
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def spec_to_proto(spec: ToolSpec) -> llm_pb2.ToolSpec:
    return llm_pb2.ToolSpec(
        name=spec.name,
        description=spec.description,
        parameters_json_schema=spec.parameters_json_schema,
    )


def reply_from_proto(response: llm_pb2.CompleteResponse) -> LLMReply:
    msg = response.message
    calls = tuple(
        ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json or "{}")
        for c in msg.tool_calls
    )
    return LLMReply(
        # Whatever role the gateway echoes, this is the model speaking.
        message=ChatMessage(role="assistant", content=msg.content, tool_calls=calls),
        usage=Usage(
            prompt_tokens=response.usage.prompt_tokens,
            completion_tokens=response.usage.completion_tokens,
            cost_usd=response.usage.cost_usd,
        ),
        model=response.model,
    )


def descriptor_from_proto(tool: tool_pb2.ToolDescriptor) -> ToolSpec:
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
    )
