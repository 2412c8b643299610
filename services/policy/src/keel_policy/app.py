"""Composition root of the policy service: the only place that wires its parts."""

from __future__ import annotations

from keel.policy.v1 import policy_pb2, policy_pb2_grpc
from keel_core.runtime import ServiceRuntime, run_service
from keel_policy.adapters.reloader import PolicyReloader, load_holder
from keel_policy.config import Settings
from keel_policy.handlers.grpc_servicer import PolicyServicer
from keel_policy.metrics import PolicyMetrics

SERVICE = "policy"


async def serve(settings: Settings) -> None:
    holder = load_holder(settings.policy_file)
    runtime = ServiceRuntime(SERVICE, settings)
    metrics = PolicyMetrics(runtime.registry)
    reloader = PolicyReloader(
        settings.policy_file, holder, runtime.audit, metrics, settings.reload_interval_s
    )
    runtime.on_start(reloader.start)
    runtime.on_stop(reloader.stop)
    servicer = PolicyServicer(holder, runtime.audit, metrics)
    runtime.serve_grpc(
        [
            (
                servicer,
                policy_pb2_grpc.add_PolicyServiceServicer_to_server,
                policy_pb2.DESCRIPTOR.services_by_name["PolicyService"].full_name,
            )
        ]
    )
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
