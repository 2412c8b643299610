"""The tool gateway's use cases: what a caller can ask of it, with the hooks every call gets.

``ExecuteToolCall`` runs one call through the domain's ``ExecutionService`` (the choke point:
ledger, approval, policy, validation, resilience) and then does what the service does around
it: count it (metrics), describe it on the current span, audit it, and mark the output as
untrusted when configured. ``ListTools`` answers a profile's catalog. The gRPC servicer only
translates protobuf to these models and back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from keel_contracts.errors import InvalidArgument, Unavailable
from keel_core import semconv
from keel_core.audit import AuditEmitter
from keel_core.redaction import audit_arguments
from keel_core.tracing import set_attributes
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.models import ExecutionResult, RequestContext
from keel_tool_gateway.domain.output import mark_result
from keel_tool_gateway.domain.registry import CatalogEntry, ToolRegistry
from keel_tool_gateway.errors import ResultNotRecorded
from keel_tool_gateway.metrics import UNKNOWN_TOOL, ToolGatewayMetrics

AUDIT_ACTION = "tool.execution"
AUDIT_UNAVAILABLE = (
    "the audit log is not accepting records, so the call is not run or answered "
    "(KEEL_TOOL_GATEWAY_AUDIT_FAIL_OPEN=true relaxes this)"
)
MAX_IDEMPOTENCY_KEY_CHARS = 256

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolCall:
    """One ``Execute`` request, as the gateway reads it."""

    ctx: RequestContext
    tool_name: str
    arguments_json: str
    idempotency_key: str = ""
    approval_id: str = ""
    # The session's task (bounded): trusted text for provenance checks.
    task_text: str = ""


class ListTools:
    """The catalog a profile is offered (an unknown or empty profile gets the default one's);
    what a model is told it can call, not what it may do: policy still decides each call."""

    def __init__(self, registry: ToolRegistry) -> None:
        self._registry = registry

    def __call__(self, agent_profile: str) -> list[CatalogEntry]:
        return self._registry.catalog(agent_profile)


class ExecuteToolCall:
    """Decide and (maybe) run one call, then count, trace and audit it.

    A tool's failure is a result (``status == "error"``). Raises ``InvalidArgument`` for a key
    longer than ``MAX_IDEMPOTENCY_KEY_CHARS`` (nothing is decided), ``ResultNotRecorded``
    when the call ran but the ledger could not store it (it is audited with
    ``recorded: false`` and the caller retries the key), and ``Unavailable`` when nothing ran
    because policy or the approval service could not answer: the caller waits that out
    instead of showing the model a tool error (it is audited like any refusal), or when an
    earlier run of the key holds its intent and may still be going (``RunInProgress``).

    An unaudited call fails closed with ``Unavailable``: nothing runs while the audit emitter
    knows the bus refuses its records (``AuditEmitter.writable``: how an emitter that does not
    wait for acknowledgements finds out), and a result whose record could not be written is
    not answered. ``audit_fail_open`` runs and answers anyway (the failure is logged).
    """

    def __init__(
        self,
        service: ExecutionService,
        registry: ToolRegistry,
        audit: AuditEmitter,
        metrics: ToolGatewayMetrics,
        *,
        mark_untrusted_output: bool = False,
        audit_fail_open: bool = False,
    ) -> None:
        self._service = service
        self._registry = registry
        self._audit = audit
        self._metrics = metrics
        # Wrap `output` (and a failed call's `error`) in <tool_output ... trust="untrusted"> for
        # the caller (domain/output.py);
        # the ledger and the audit keep the raw value either way.
        self._mark_untrusted_output = mark_untrusted_output
        self._audit_fail_open = audit_fail_open

    async def __call__(self, call: ToolCall) -> ExecutionResult:
        if len(call.idempotency_key) > MAX_IDEMPOTENCY_KEY_CHARS:
            raise InvalidArgument(
                f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY_CHARS} characters"
            )
        if not self._audit.writable and not self._audit_fail_open:
            await self._refuse_unaudited(call)
        try:
            result = await self._service.execute(
                call.ctx,
                call.tool_name,
                call.arguments_json,
                idempotency_key=call.idempotency_key,
                approval_id=call.approval_id,
                task_text=call.task_text,
            )
        except ResultNotRecorded as exc:
            # It ran: audited as such, but the caller gets UNAVAILABLE and retries the key.
            self._observe(call.tool_name, exc.result)
            await self._record(call, exc.result, recorded=False)
            raise
        self._observe(call.tool_name, result)
        set_attributes(
            {
                semconv.OPERATION: semconv.EXECUTE_TOOL,
                semconv.TOOL_NAME: call.tool_name,
                "keel.tool.status": result.status,
                "keel.tool.replayed": result.replayed,
            }
        )
        await self._record(call, result, recorded=True)
        if result.dependency_unavailable:
            raise Unavailable(result.error)
        if self._mark_untrusted_output:
            result = mark_result(call.tool_name, result)
        return result

    async def _refuse_unaudited(self, call: ToolCall) -> None:
        """Try to record the refusal (it also tells the emitter when the bus accepts records
        again), then refuse: nothing ran."""
        try:
            await self._audit.record(
                AUDIT_ACTION,
                actor=call.ctx.agent_id or "unknown",
                subject=call.tool_name,
                session_id=call.ctx.session_id,
                trace=call.ctx.traceparent,
                details={
                    "status": "refused",
                    "reason": "audit unavailable",
                    "idempotency_key": call.idempotency_key,
                },
            )
        except Exception:  # noqa: BLE001 - the bus still refuses: the call is refused anyway
            log.debug("audit still refusing records", exc_info=True)
        raise Unavailable(AUDIT_UNAVAILABLE)

    async def _record(self, call: ToolCall, result: ExecutionResult, *, recorded: bool) -> None:
        try:
            await self._write_record(call, result, recorded=recorded)
        except Exception as exc:
            if not self._audit_fail_open:
                raise Unavailable(AUDIT_UNAVAILABLE) from exc
            log.error("tool call %s answered without its audit record: %s", call.tool_name, exc)

    async def _write_record(
        self, call: ToolCall, result: ExecutionResult, *, recorded: bool
    ) -> None:
        ctx = call.ctx
        await self._audit.record(
            AUDIT_ACTION,
            actor=ctx.agent_id or "unknown",
            subject=call.tool_name,
            session_id=ctx.session_id,
            trace=ctx.traceparent,
            details={
                "status": result.status,
                "idempotency_key": call.idempotency_key,
                "approval_id": call.approval_id,
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
