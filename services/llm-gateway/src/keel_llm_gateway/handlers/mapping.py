"""Protobuf <-> domain conversions for the LLM gateway."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2
from keel_contracts.errors import InvalidArgument
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    Scope,
    ToolCall,
    ToolSpec,
)

ROLES = frozenset({"system", "user", "assistant", "tool"})


def request_from_proto(request: llm_pb2.CompleteRequest) -> CompletionRequest:
    try:
        return CompletionRequest(
            messages=tuple(message_from_proto(m) for m in request.messages),
            tools=tuple(_tool_from_proto(t) for t in request.tools),
            model=request.model,
            temperature=request.temperature,
            max_tokens=request.max_tokens or None,
            complexity=request.complexity,
            cache=request.cache,
            scope=Scope(
                session_id=request.context.session_id,
                agent_id=request.context.agent_id,
                tenant=request.context.tenant,
            ),
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidArgument(f"invalid completion request: {where}: {first['msg']}") from exc


def message_from_proto(message: common_pb2.ChatMessage) -> ChatMessage:
    if message.role not in ROLES:
        raise InvalidArgument(f"unknown message role {message.role!r}")
    return ChatMessage(
        role=message.role,  # checked against ROLES above
        content=message.content,
        tool_calls=tuple(
            ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json or "{}")
            for c in message.tool_calls
        ),
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def _tool_from_proto(tool: llm_pb2.ToolSpec) -> ToolSpec:
    schema: Any = {"type": "object", "properties": {}}
    if tool.parameters_json_schema:
        try:
            schema = json.loads(tool.parameters_json_schema)
        except json.JSONDecodeError as exc:
            raise InvalidArgument(f"tool {tool.name!r}: schema is not JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise InvalidArgument(f"tool {tool.name!r}: schema must be a JSON object")
    return ToolSpec(name=tool.name, description=tool.description, parameters=schema)


def message_to_proto(message: ChatMessage) -> common_pb2.ChatMessage:
    return common_pb2.ChatMessage(
        role=message.role,
        content=message.content,
        tool_calls=[
            common_pb2.ToolCall(id=c.id, name=c.name, arguments_json=c.arguments_json)
            for c in message.tool_calls
        ],
        tool_call_id=message.tool_call_id,
        name=message.name,
    )


def completion_to_proto(completion: Completion) -> llm_pb2.CompleteResponse:
    usage = completion.usage
    return llm_pb2.CompleteResponse(
        message=message_to_proto(completion.message),
        model=completion.model,
        provider=completion.provider,
        usage=common_pb2.Usage(
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost_usd=usage.cost_usd if usage else 0.0,
        ),
        cached=completion.cached,
        finish_reason=completion.finish_reason,
    )
