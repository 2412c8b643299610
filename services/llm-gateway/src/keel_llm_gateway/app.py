"""Composition root of the LLM gateway: the only place that wires its parts."""

from __future__ import annotations

from keel.llm.v1 import llm_pb2, llm_pb2_grpc
from keel_core.runtime import ServiceRuntime, run_service
from keel_llm_gateway.adapters.openai_compat import OpenAICompatProvider
from keel_llm_gateway.adapters.scripted import ScriptedProvider
from keel_llm_gateway.config import Settings
from keel_llm_gateway.domain.gateway import Gateway
from keel_llm_gateway.domain.provider import Provider
from keel_llm_gateway.handlers.grpc_servicer import LLMGatewayServicer
from keel_llm_gateway.metrics import LLMMetrics

SERVICE = "llm-gateway"


def build_provider(settings: Settings) -> Provider:
    """Built before the runtime, so a bad scenario file stops start-up before Kafka is touched."""
    if settings.provider == "openai":
        return OpenAICompatProvider(
            settings.openai_base_url,
            settings.openai_api_key,
            settings.openai_model,
            settings.request_timeout_s,
        )
    return ScriptedProvider.from_file(settings.scenario_file)


async def serve(settings: Settings) -> None:
    provider = build_provider(settings)
    runtime = ServiceRuntime(SERVICE, settings)
    runtime.on_stop(provider.aclose)
    gateway = Gateway(provider, settings.prices)
    servicer = LLMGatewayServicer(gateway, runtime.audit, LLMMetrics(runtime.registry))
    runtime.serve_grpc(
        [
            (
                servicer,
                llm_pb2_grpc.add_LLMGatewayServicer_to_server,
                llm_pb2.DESCRIPTOR.services_by_name["LLMGateway"].full_name,
            )
        ]
    )
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
