"""Protobuf <-> domain conversions for the LLM gateway.

A session sends its whole history and tool catalog again at every step, so the messages and
tool specs of a request are parsed through ``WireMemo``s keyed by their bytes: a repeated one
comes back as the same frozen model, whose derived forms (a tool's canonical JSON, its
parameters' size) are then made once for the life of the entry instead of once per request.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from keel.common.v1 import common_pb2
from keel.llm.v1 import llm_pb2
from keel_clients.mapping import message_from_proto, message_to_proto
from keel_contracts.errors import InvalidArgument
from keel_contracts.memo import WireMemo
from keel_llm_gateway.domain.models import (
    Completion,
    CompletionRequest,
    Scope,
    ToolSpec,
)

ROLES = frozenset({"system", "user", "assistant", "tool"})

# Enough for the live histories and catalogs of a few hundred sessions; past either bound the
# least recently used are parsed again when they come back. 16 MiB of wire bytes: messages over
# 256 KiB (a large tool output) are parsed every time.
MEMO_CAPACITY = 8192
MEMO_BYTES = 16 * 1024 * 1024


def request_from_proto(request: llm_pb2.CompleteRequest) -> CompletionRequest:
    try:
        return CompletionRequest(
            messages=tuple(map(_message, request.messages)),
            tools=tuple(map(_tool, request.tools)),
            model=request.model,
            temperature=request.temperature,
            max_tokens=request.max_tokens or None,
            complexity=request.complexity,
            cache=request.cache,
            seed=request.seed if request.HasField("seed") else None,
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


_message = WireMemo(message_from_proto, MEMO_CAPACITY, MEMO_BYTES)
_tool = WireMemo(_tool_from_proto, MEMO_CAPACITY, MEMO_BYTES)


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
