"""Composition root of the agent loop: the only place that wires its parts."""

from __future__ import annotations

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_agent_loop.adapters.kafka_sink import KafkaEventSink
from keel_agent_loop.adapters.llm_client import GrpcLLM
from keel_agent_loop.adapters.memory_client import GrpcMemory
from keel_agent_loop.adapters.tool_client import GrpcTools
from keel_agent_loop.config import Settings
from keel_agent_loop.domain.loop import AgentLoop, LoopConfig
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.handlers.grpc_servicer import AgentServicer
from keel_agent_loop.handlers.task_handler import TaskHandler
from keel_agent_loop.metrics import AgentMetrics
from keel_core.grpc import insecure_channel
from keel_core.runtime import ServiceRuntime, run_service
from keel_core.topics import TASKS

SERVICE = "agent-loop"


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    metrics = AgentMetrics(runtime.registry)
    channels = {
        name: insecure_channel(target)
        for name, target in (
            ("llm", settings.llm_target),
            ("tool", settings.tool_target),
            ("memory", settings.memory_target),
        )
    }

    async def close_channels() -> None:
        for channel in channels.values():
            await channel.close()

    # Registered first so it runs last: after gRPC and the consumers have stopped.
    runtime.on_stop(close_channels)
    store = SessionStore(settings.session_store_capacity)
    loop = AgentLoop(
        llm=GrpcLLM(
            channels["llm"],
            settings.llm_timeout_s,
            retries=settings.llm_retries,
            backoff_s=settings.retry_backoff_s,
        ),
        tools=GrpcTools(channels["tool"], settings.call_timeout_s),
        memory=GrpcMemory(channels["memory"], settings.call_timeout_s),
        sink=TeeSink(store, KafkaEventSink(runtime.producer)),
        config=LoopConfig(settings.system_prompt, settings.memory_token_budget),
        observer=metrics,
    )
    handler = TaskHandler(loop, store, runtime.producer, runtime.audit, metrics)
    runtime.consume([TASKS], settings.consumer_group, handler)
    servicer = AgentServicer(store, runtime.producer, settings.default_max_iterations)
    runtime.serve_grpc(
        [
            (
                servicer,
                agent_pb2_grpc.add_AgentServiceServicer_to_server,
                agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
            )
        ]
    )
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
