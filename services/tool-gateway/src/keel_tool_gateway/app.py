"""Composition root of the tool gateway: the only place that wires its parts."""

from __future__ import annotations

from keel.tool.v1 import tool_pb2, tool_pb2_grpc
from keel_core.grpc import insecure_channel
from keel_core.runtime import ServiceRuntime, run_service
from keel_tool_gateway.adapters.policy_client import PolicyClient
from keel_tool_gateway.config import Settings
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.tools import builtin_registry
from keel_tool_gateway.handlers.grpc_servicer import ToolGatewayServicer
from keel_tool_gateway.metrics import ToolGatewayMetrics

SERVICE = "tool-gateway"


async def serve(settings: Settings) -> None:
    registry = builtin_registry(settings.default_tool_timeout_s)
    channel = insecure_channel(settings.policy_target)
    service = ExecutionService(
        registry,
        PolicyClient(channel, settings.policy_timeout_s),
        ResultLedger(settings.ledger_size),
        max_output_chars=settings.max_output_chars,
    )
    runtime = ServiceRuntime(SERVICE, settings)
    # Stop hooks run after the gRPC server has stopped, so in-flight calls could finish.
    runtime.on_stop(channel.close)
    servicer = ToolGatewayServicer(
        service, registry, runtime.audit, ToolGatewayMetrics(runtime.registry)
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
