"""Composition root of the tool gateway: the only place that wires its parts.

The shape every service shares: ``build(settings, runtime)`` wires the parts onto a runtime
(the real one, or ``keel_core.testing.InMemoryRuntime`` in component tests) and starts
nothing; ``serve(settings)`` builds on a ``ServiceRuntime`` and runs it until SIGTERM.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import grpc

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_clients import (
    ApprovalClient,
    CallOptions,
    MemoryClient,
    PolicyClient,
    open_channel,
)
from keel_contracts.topics import TOOL_RESULTS
from keel_core import trust
from keel_core.grpc.ratelimit import apply_rate_limits
from keel_core.ratelimit import RateLimiter, rule
from keel_core.runtime import Runtime, ServiceRuntime, run_service
from keel_tool_gateway.adapters.kafka_ledger import KafkaLedger
from keel_tool_gateway.adapters.ledger_expiry import LedgerSweeper
from keel_tool_gateway.adapters.mcp import McpMounts, mount_mcp_servers
from keel_tool_gateway.adapters.memory import MemoryTools
from keel_tool_gateway.adapters.outbox import KafkaOutbox
from keel_tool_gateway.adapters.resilience import Resilience
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.config import Settings
from keel_tool_gateway.domain.approval import VerifiedApprovals
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ports import ApprovalPort
from keel_tool_gateway.domain.provenance import ProvenanceIndex
from keel_tool_gateway.domain.registry import ToolRegistry
from keel_tool_gateway.domain.resilience.fallback import AUDIT_ACTION as FALLBACK_AUDIT
from keel_tool_gateway.domain.resilience.fallback import FallbackEvent, Fallbacks
from keel_tool_gateway.handlers.grpc_servicer import ToolGatewayServicer
from keel_tool_gateway.metrics import ToolGatewayMetrics
from keel_tool_gateway.usecase import ExecuteToolCall, ListTools

SERVICE = "tool-gateway"
# What counts against which rate limit (docs/rate-limits.md); limits are off until set.
RATE_LIMIT_RULES = [
    rule("/keel.tool.v1.ToolGateway/Execute", "tool", key="call.name"),
    rule("/keel.tool.v1.ToolGateway/", "calls"),
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToolGatewayParts:
    registry: ToolRegistry
    ledger: KafkaLedger
    service: ExecutionService
    execute: ExecuteToolCall
    list_tools: ListTools
    metrics: ToolGatewayMetrics
    # Filled by the start hook that mounts the MCP servers.
    mcp: list[McpMounts] = field(default_factory=list)


def build(settings: Settings, runtime: Runtime) -> ToolGatewayParts:
    metrics = ToolGatewayMetrics(runtime.registry)
    # The ledger key: this gateway's records carry its MAC, and a record without one (written
    # to keel.tool-results by anyone else) is never answered. None in the insecure dev mode.
    material = trust.load(settings.trust, SERVICE)
    ledger_mac = material.ledger_mac() if material is not None else None

    async def security_denied(key: str, reason: str, session_id: str, trace: str) -> None:
        await runtime.audit.record(
            "security.denied",
            actor=SERVICE,
            subject=key,
            session_id=session_id,
            trace=trace,
            details={"reason": reason, "layer": "ledger", "idempotency_key": key},
        )

    async def fallback_taken(event: FallbackEvent) -> None:
        await runtime.audit.record(
            FALLBACK_AUDIT,
            actor=SERVICE,
            subject=event.from_tool,
            session_id=event.session_id,
            trace=event.trace,
            details=event.details(),
        )

    memory_channel = _channel(runtime, settings.memory.target)
    registry = builtin_registry(
        settings.default_tool_timeout_s,
        outbox=KafkaOutbox(runtime.producer),
        test_tools_dir=settings.test_tools_dir,
        profiles=settings.profiles,
        http_fetch=settings.http_fetch,
        files=settings.files,
        memory=MemoryTools(
            MemoryClient(memory_channel, CallOptions(timeout_s=settings.memory.timeout_s))
        ),
        sandbox=settings.sandbox,
    )
    # MCP servers' tools join the registry before the gRPC server serves (start hooks run
    # first) and are closed after it stops.
    mounts: list[McpMounts] = []

    async def mcp_event(action: str, subject: str, details: dict[str, Any]) -> None:
        await runtime.audit.record(action, actor=SERVICE, subject=subject, details=details)

    async def mount_mcp() -> None:
        mounts.append(
            await mount_mcp_servers(
                settings.mcp,
                registry,
                on_event=mcp_event,
                on_health=McpHealth(runtime),
                default_output_chars=settings.max_output_chars,
            )
        )

    async def unmount_mcp() -> None:
        for mount in mounts:
            await mount.aclose()

    runtime.on_start(mount_mcp)
    runtime.on_stop(unmount_mcp)
    # The ledger is loaded fully before the gRPC server starts (start hooks run first), so no
    # call is served from a partial view; it is stopped after the server (stop hooks run last).
    table = runtime.table(TOOL_RESULTS)
    ledger = KafkaLedger(table, mac=ledger_mac, on_forged=security_denied)
    # Pending ledger writes get a grace period to land, then their retries stop (registered
    # after the table, so it runs before the table stops).
    runtime.on_stop(ledger.aclose)
    sweeper = LedgerSweeper(table, settings.ledger_retention_s, settings.ledger_sweep_interval_s)
    runtime.on_start(sweeper.start)
    runtime.on_stop(sweeper.stop)
    policy_channel = _channel(runtime, settings.policy_target)
    approval_channel = _channel(runtime, settings.approval_target)
    service = ExecutionService(
        registry,
        PolicyClient(policy_channel, CallOptions(timeout_s=settings.policy_timeout_s)),
        ledger,
        approvals=_approvals(
            runtime,
            ApprovalClient(approval_channel, CallOptions(timeout_s=settings.approval_timeout_s)),
            trust.load(settings.trust, SERVICE),
        ),
        max_output_chars=settings.max_output_chars,
        resilience=Resilience(settings.resilience, observer=metrics),
        intent_grace_s=settings.intent_grace_s,
        on_denied=security_denied,
        # Derived from the ledger every replica loads: no store of its own (ADR 0011).
        provenance=ProvenanceIndex(ledger),
        fallbacks=Fallbacks(settings.resilience.fallbacks, on_fallback=fallback_taken),
    )
    execute = ExecuteToolCall(
        service,
        registry,
        runtime.audit,
        metrics,
        mark_untrusted_output=settings.mark_untrusted_output,
        audit_fail_open=settings.audit_fail_open,
    )
    list_tools = ListTools(registry)
    runtime.serve_grpc(
        [
            (
                ToolGatewayServicer(execute, list_tools),
                tool_pb2_grpc.add_ToolGatewayServicer_to_server,
                tool_pb2.DESCRIPTOR.services_by_name["ToolGateway"].full_name,
            )
        ]
    )
    limits = settings.rate_limits.with_default_rules(RATE_LIMIT_RULES)
    apply_rate_limits(RateLimiter(limits), runtime, SERVICE)
    return ToolGatewayParts(registry, ledger, service, execute, list_tools, metrics, mounts)


class McpHealth:
    """A required MCP server went down or came back: gRPC health follows, so an orchestrator
    takes this replica out of rotation while tools it must offer cannot run. Changes only are
    logged (the mount reports the state at every check)."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._serving = True

    def __call__(self, serving: bool) -> None:
        self._runtime.set_serving(serving)
        if serving == self._serving:
            return
        self._serving = serving
        if not serving:
            log.warning("a required MCP server is down: health is NOT_SERVING until it is back")
        else:
            log.warning("every required MCP server is connected again: health is SERVING")


def _channel(runtime: Runtime, target: str) -> grpc.aio.Channel:
    """A client channel, closed when the service stops (it connects on first use)."""
    channel = open_channel(target)
    runtime.on_stop(channel.close)
    return channel


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    build(settings, runtime)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)


def _approvals(
    runtime: Runtime, client: ApprovalPort, material: trust.TrustMaterial | None
) -> ApprovalPort:
    """The approval lookup: every decided approval checked against the approval service's
    signature (refusals audited as ``security.denied``); unchecked in the insecure dev mode."""
    if material is None:
        return client

    async def denied(approval_id: str, reason: str) -> None:
        await runtime.audit.record(
            "security.denied",
            actor="approval",
            subject=approval_id,
            details={"reason": reason, "check": "approval signature"},
        )

    return VerifiedApprovals(client, material.approval_verifier(), denied=denied)
