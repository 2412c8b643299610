"""Protobuf <-> domain conversions for the tool gateway."""

from __future__ import annotations

import json

from keel.tool.v1 import tool_pb2
from keel_clients.mapping import context_from_proto
from keel_tool_gateway.domain.models import ExecutionResult, ExecutionStatus
from keel_tool_gateway.domain.provenance import MAX_TASK_CHARS
from keel_tool_gateway.domain.registry import CatalogEntry
from keel_tool_gateway.usecase import ToolCall

TO_PROTO: dict[ExecutionStatus, tool_pb2.ExecuteStatus.ValueType] = {
    "ok": tool_pb2.EXECUTE_STATUS_OK,
    "error": tool_pb2.EXECUTE_STATUS_ERROR,
    "denied": tool_pb2.EXECUTE_STATUS_DENIED,
    "needs_approval": tool_pb2.EXECUTE_STATUS_NEEDS_APPROVAL,
}


def call_from_proto(request: tool_pb2.ExecuteRequest) -> ToolCall:
    return ToolCall(
        ctx=context_from_proto(request.context),
        tool_name=request.call.name,
        arguments_json=request.call.arguments_json,
        idempotency_key=request.idempotency_key,
        approval_id=request.approval_id,
        task_text=request.task_text[:MAX_TASK_CHARS],
    )


def result_to_proto(result: ExecutionResult) -> tool_pb2.ExecuteResponse:
    return tool_pb2.ExecuteResponse(
        status=TO_PROTO[result.status],
        output=result.output,
        error=result.error,
        policy_rule=result.rule_id,
        duration_ms=result.duration_ms,
    )


def descriptor_to_proto(entry: CatalogEntry) -> tool_pb2.ToolDescriptor:
    return tool_pb2.ToolDescriptor(
        name=entry.name,
        description=entry.description,
        parameters_json_schema=json.dumps(entry.parameters_schema, sort_keys=True),
        timeout_seconds=entry.timeout_s,
    )


def catalog_to_proto(entries: list[CatalogEntry]) -> tool_pb2.ListToolsResponse:
    return tool_pb2.ListToolsResponse(tools=[descriptor_to_proto(entry) for entry in entries])
