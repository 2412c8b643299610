"""Composition root of the tool gateway: the only place that wires its parts."""

from __future__ import annotations

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_contracts.topics import TOOL_RESULTS
from keel_core.bus.table import CompactedTable
from keel_core.grpc import insecure_channel
from keel_core.runtime import ServiceRuntime, run_service
from keel_tool_gateway.adapters.approval_client import ApprovalClient
from keel_tool_gateway.adapters.kafka_ledger import KafkaLedger
from keel_tool_gateway.adapters.mcp import McpMounts, mount_mcp_servers
from keel_tool_gateway.adapters.memory_client import MemoryClient
from keel_tool_gateway.adapters.outbox import KafkaOutbox
from keel_tool_gateway.adapters.policy_client import PolicyClient
from keel_tool_gateway.config import Settings
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.resilience.runner import Resilience
from keel_tool_gateway.domain.tools import builtin_registry
from keel_tool_gateway.handlers.grpc_servicer import ToolGatewayServicer
from keel_tool_gateway.metrics import ToolGatewayMetrics

SERVICE = "tool-gateway"


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    metrics = ToolGatewayMetrics(runtime.registry)
    memory_channel = insecure_channel(settings.memory.target)
    runtime.on_stop(memory_channel.close)
    registry = builtin_registry(
        settings.default_tool_timeout_s,
        outbox=KafkaOutbox(runtime.producer),
        test_tools_dir=settings.test_tools_dir,
        profiles=settings.profiles,
        http_fetch=settings.http_fetch,
        files=settings.files,
        memory=MemoryClient(memory_channel, settings.memory.timeout_s),
        sandbox=settings.sandbox,
    )
    # MCP servers' tools join the registry before the gRPC server serves (start hooks run
    # first) and are closed after it stops.
    mounts: list[McpMounts] = []

    async def mount_mcp() -> None:
        mounts.append(await mount_mcp_servers(settings.mcp, registry))

    async def unmount_mcp() -> None:
        for mount in mounts:
            await mount.aclose()

    runtime.on_start(mount_mcp)
    runtime.on_stop(unmount_mcp)
    # The ledger is loaded fully before the gRPC server starts (start hooks run first), so no
    # call is served from a partial view; it is stopped after the server (stop hooks run last).
    table = CompactedTable(settings.kafka, TOOL_RESULTS, runtime.producer, SERVICE)
    runtime.on_start(table.start)
    runtime.on_stop(table.stop)
    policy_channel = insecure_channel(settings.policy_target)
    approval_channel = insecure_channel(settings.approval_target)
    runtime.on_stop(policy_channel.close)
    runtime.on_stop(approval_channel.close)
    service = ExecutionService(
        registry,
        PolicyClient(policy_channel, settings.policy_timeout_s),
        KafkaLedger(table),
        approvals=ApprovalClient(approval_channel, settings.approval_timeout_s),
        max_output_chars=settings.max_output_chars,
        resilience=Resilience(settings.resilience, observer=metrics),
    )
    servicer = ToolGatewayServicer(
        service,
        registry,
        runtime.audit,
        metrics,
        mark_untrusted_output=settings.mark_untrusted_output,
    )
    runtime.serve_grpc(
        [
            (
                servicer,
                tool_pb2_grpc.add_ToolGatewayServicer_to_server,
                tool_pb2.DESCRIPTOR.services_by_name["ToolGateway"].full_name,
            )
        ]
    )
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
