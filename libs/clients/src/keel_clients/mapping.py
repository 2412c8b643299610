"""The shared types on the wire: ``keel_contracts`` models ↔ ``keel.common.v1`` messages.

Both directions live here, used by the clients and by the servicers that receive the same
messages, so the two sides never disagree about a field.
"""

from __future__ import annotations

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2
from keel_contracts.chat import ChatMessage, RequestContext, Role, ToolCall, ToolSpec, Usage
from keel_contracts.errors import InvalidArgument

ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})


def context_to_proto(ctx: RequestContext) -> common_pb2.RequestContext:
    return common_pb2.RequestContext(
        session_id=ctx.session_id,
        agent_id=ctx.agent_id,
        tenant=ctx.tenant,
        agent_profile=ctx.agent_profile,
        traceparent=ctx.traceparent,
    )


# Ids and names, not documents: a context field past this is refused at the edge, before it
# reaches a log line, a metric label or an audit record (which the broker caps at 1 MiB).
MAX_CONTEXT_FIELD_CHARS = 512


def context_from_proto(ctx: common_pb2.RequestContext) -> RequestContext:
    """Every field as sent, empty ones included (an audit records them as they came). Raises
    ``InvalidArgument`` for a field longer than ``MAX_CONTEXT_FIELD_CHARS``."""
    for name in ("session_id", "agent_id", "tenant", "agent_profile", "traceparent"):
        if len(getattr(ctx, name)) > MAX_CONTEXT_FIELD_CHARS:
            raise InvalidArgument(
                f"context.{name} is longer than {MAX_CONTEXT_FIELD_CHARS} characters"
            )
    return RequestContext(
        session_id=ctx.session_id,
        agent_id=ctx.agent_id,
        tenant=ctx.tenant,
        agent_profile=ctx.agent_profile,
        traceparent=ctx.traceparent,
    )


def call_to_proto(call: ToolCall) -> common_pb2.ToolCall:
    return common_pb2.ToolCall(id=call.id, name=call.name, arguments_json=call.arguments_json)


def call_from_proto(call: common_pb2.ToolCall) -> ToolCall:
    return ToolCall(id=call.id, name=call.name, arguments_json=call.arguments_json or "{}")


def message_to_proto(message: ChatMessage) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(
        role=message.role,
        content=message.content,
        tool_calls=[call_to_proto(c) for c in message.tool_calls],
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def message_from_proto(message: common_pb2.ChatMessage, role: Role | None = None) -> ChatMessage:
    """``role`` overrides what the sender wrote (a completion is always the assistant's)."""
    if role is None:
        if message.role not in ROLES:
            raise InvalidArgument(f"unknown message role {message.role!r}")
        role = message.role  # type: ignore[assignment]
    return ChatMessage(
        role=role,
        content=message.content,
        tool_calls=tuple(call_from_proto(c) for c in message.tool_calls),
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def usage_to_proto(usage: Usage) -> common_pb2.Usage:
    return common_pb2.Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
    )


def usage_from_proto(usage: common_pb2.Usage) -> Usage:
    return Usage(
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cost_usd=usage.cost_usd,
    )


def spec_to_proto(spec: ToolSpec) -> llm_pb2.ToolSpec:
    return llm_pb2.ToolSpec(
        name=spec.name,
        description=spec.description,
        parameters_json_schema=spec.parameters_json_schema,
    )
