"""gRPC front of the tool gateway: every Execute is decided, counted and audited."""

from __future__ import annotations

import grpc

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_contracts.errors import InvalidArgument
from keel_core import semconv
from keel_core.audit import AuditEmitter
from keel_core.redaction import audit_arguments
from keel_core.tracing import set_attributes
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.models import ExecutionResult, RequestContext
from keel_tool_gateway.domain.output import mark_untrusted
from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.errors import ResultNotRecorded
from keel_tool_gateway.handlers.mapping import (
    catalog_to_proto,
    context_from_proto,
    result_to_proto,
)
from keel_tool_gateway.metrics import UNKNOWN_TOOL, ToolGatewayMetrics

AUDIT_ACTION = "tool.execution"
MAX_IDEMPOTENCY_KEY_CHARS = 256


class ToolGatewayServicer(tool_pb2_grpc.ToolGatewayServicer):
    def __init__(
        self,
        service: ExecutionService,
        registry: ToolRegistry,
        audit: AuditEmitter,
        metrics: ToolGatewayMetrics,
        *,
        mark_untrusted_output: bool = False,
    ) -> None:
        self._service = service
        self._registry = registry
        self._audit = audit
        self._metrics = metrics
        # Wrap `output` in <tool_output ... trust="untrusted"> for the caller (domain/output.py);
        # the ledger and the audit keep the raw value either way.
        self._mark_untrusted_output = mark_untrusted_output

    async def ListTools(
        self, request: tool_pb2.ListToolsRequest, context: grpc.aio.ServicerContext
    ) -> tool_pb2.ListToolsResponse:
        # The profile's catalog (an unknown or empty profile gets the default one's); what a
        # model is offered, not what it may do: policy still decides each call.
        return catalog_to_proto(self._registry.catalog(request.agent_profile))

    async def Execute(
        self, request: tool_pb2.ExecuteRequest, context: grpc.aio.ServicerContext
    ) -> tool_pb2.ExecuteResponse:
        if len(request.idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
            raise InvalidArgument(
                f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters"
            )
        ctx = context_from_proto(request.context)
        try:
            result = await self._service.execute(
                ctx,
                request.call.name,
                request.call.arguments_json,
                idempotency_key=request.idempotency_key,
                approval_id=request.approval_id,
            )
        except ResultNotRecorded as exc:
            # It ran: audited as such, but the caller gets UNAVAILABLE and retries the key.
            self._observe(request.call.name, exc.result)
            await self._record(ctx, request, exc.result, recorded=False)
            raise
        self._observe(request.call.name, result)
        set_attributes(
            {
                semconv.OPERATION: semconv.EXECUTE_TOOL,
                semconv.TOOL_NAME: request.call.name,
                "keel.tool.status": result.status,
                "keel.tool.replayed": result.replayed,
            }
        )
        await self._record(ctx, request, result, recorded=True)
        if self._mark_untrusted_output and result.output:
            marked = mark_untrusted(request.call.name, result.output)
            result = result.model_copy(update={"output": marked})
        return result_to_proto(result)

    async def _record(
        self,
        ctx: RequestContext,
        request: tool_pb2.ExecuteRequest,
        result: ExecutionResult,
        *,
        recorded: bool,
    ) -> None:
        call = request.call
        await self._audit.record(
            AUDIT_ACTION,
            actor=ctx.agent_id or "unknown",
            subject=call.name,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details={
                "status": result.status,
                "idempotency_key": request.idempotency_key,
                "approval_id": request.approval_id,
                "approval_outcome": result.approval_outcome,
                "recorded": recorded,
                "rule": result.rule_id,
                "duration_ms": round(result.duration_ms, 3),
                "replayed": result.replayed,
                "truncated": result.truncated,
                "profile": ctx.agent_profile,
                "arguments": audit_arguments(call.arguments_json),
            },
        )

    def _observe(self, tool: str, result: ExecutionResult) -> None:
        label = tool if self._registry.get(tool) is not None else UNKNOWN_TOOL
        self._metrics.executions.labels(label, result.status).inc()
        if result.replayed:
            self._metrics.ledger_hits.labels(label).inc()
        else:
            self._metrics.latency.labels(label).observe(result.duration_ms / 1000.0)
