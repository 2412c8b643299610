"""ToolPort over the tool-gateway (``ListTools``, ``Execute``)."""

from __future__ import annotations

import grpc
from opentelemetry.trace import SpanKind

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_agent_loop.adapters.convert import (
    call_to_proto,
    context_to_proto,
    descriptor_from_proto,
    outcome_from_proto,
)
from keel_agent_loop.adapters.metadata import trace_metadata
from keel_agent_loop.domain.models import RequestContext, ToolCall, ToolOutcome, ToolSpec
from keel_core import semconv
from keel_core.grpc import call_with_errors
from keel_core.tracing import start_span


class GrpcTools:
    """The catalog of a profile is fetched once and cached for the life of the process (a
    failed fetch is not cached); a registry that changes at run time needs a restart."""

    def __init__(self, channel: grpc.aio.Channel, timeout_s: float) -> None:
        self._stub = tool_pb2_grpc.ToolGatewayStub(channel)
        self._timeout_s = timeout_s
        self._catalogs: dict[str, list[ToolSpec]] = {}

    async def list_tools(self, profile: str) -> list[ToolSpec]:
        cached = self._catalogs.get(profile)
        if cached is not None:
            return list(cached)
        response = await call_with_errors(
            lambda: self._stub.ListTools(
                tool_pb2.ListToolsRequest(agent_profile=profile), timeout=self._timeout_s
            )
        )
        catalog = [descriptor_from_proto(t) for t in response.tools]
        self._catalogs[profile] = catalog
        return list(catalog)

    async def execute(
        self, ctx: RequestContext, call: ToolCall, idempotency_key: str, approval_id: str = ""
    ) -> ToolOutcome:
        request = tool_pb2.ExecuteRequest(
            context=context_to_proto(ctx),
            call=call_to_proto(call),
            idempotency_key=idempotency_key,
            approval_id=approval_id,
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
        with start_span(
            f"execute_tool {call.name}", kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            response = await call_with_errors(
                lambda: self._stub.Execute(
                    request, timeout=self._timeout_s, metadata=trace_metadata(ctx)
                )
            )
            outcome = outcome_from_proto(response)
            span.set_attribute("keel.tool.status", outcome.status)
            return outcome
