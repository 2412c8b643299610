"""Composition root of the agent loop: the only place that wires its parts."""

from __future__ import annotations

from dataclasses import dataclass

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_agent_loop.adapters.checkpoints import TableCheckpoints
from keel_agent_loop.adapters.control import ControlFollower
from keel_agent_loop.adapters.kafka_sink import KafkaEventSink
from keel_agent_loop.adapters.llm_client import GrpcLLM
from keel_agent_loop.adapters.memory_client import GrpcMemory
from keel_agent_loop.adapters.tool_client import GrpcTools
from keel_agent_loop.config import Settings
from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.loop import AgentLoop, LoopConfig
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.handlers.grpc_servicer import AgentServicer
from keel_agent_loop.handlers.task_handler import SessionDefaults, TaskHandler
from keel_agent_loop.metrics import AgentMetrics
from keel_agent_loop.plans import PlanSettings, install_plans
from keel_contracts.topics import APPROVAL_DECISIONS, CHECKPOINTS, SUBTASKS, TASKS
from keel_core.bus.table import CompactedTable
from keel_core.grpc import insecure_channel
from keel_core.runtime import ServiceRuntime, run_service

SERVICE = "agent-loop"


@dataclass(frozen=True)
class AgentLoopParts:
    """What extensions (multi-agent plans) wire onto: register finish hooks on ``handler``,
    add consumers or start/stop hooks on ``runtime``."""

    settings: Settings
    runtime: ServiceRuntime
    loop: AgentLoop
    handler: TaskHandler
    store: SessionStore
    checkpoints: TableCheckpoints
    # The started ``keel.checkpoints`` table, shareable (plans keep ``plan:<id>`` keys there).
    checkpoint_table: CompactedTable
    cancels: CancelFlags


def build(settings: Settings, runtime: ServiceRuntime) -> AgentLoopParts:
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
    table = CompactedTable(settings.kafka, CHECKPOINTS, runtime.producer, SERVICE)
    checkpoints = TableCheckpoints(table)
    cancels = CancelFlags(settings.cancel_memory)
    control = ControlFollower(settings.kafka, cancels, SERVICE)
    # Checkpoints are loaded before the consumers start: a resumed session must find its own.
    runtime.on_start(table.start)
    runtime.on_start(control.start)
    runtime.on_stop(table.stop)
    runtime.on_stop(control.stop)
    store = SessionStore(settings.session_store_capacity)
    memory = GrpcMemory(channels["memory"], settings.call_timeout_s)
    loop = AgentLoop(
        llm=GrpcLLM(
            channels["llm"],
            settings.llm_timeout_s,
            retries=settings.llm_retries,
            backoff_s=settings.retry_backoff_s,
        ),
        tools=GrpcTools(channels["tool"], settings.call_timeout_s),
        memory=memory,
        sink=TeeSink(store, KafkaEventSink(runtime.producer)),
        config=LoopConfig(
            settings.system_prompt,
            settings.memory_token_budget,
            context_window_tokens=settings.context_window_tokens,
            reply_reserve_tokens=settings.reply_reserve_tokens,
            checkpoint_every=settings.checkpoint_every,
        ),
        observer=metrics,
        checkpoints=checkpoints,
        cancels=cancels,
    )
    handler = TaskHandler(
        loop,
        store,
        runtime.producer,
        runtime.audit,
        metrics,
        checkpoints=checkpoints,
        memory=memory,
        cancels=cancels,
        defaults=SessionDefaults(settings.default_token_budget, settings.default_cost_budget_usd),
        decision_wait_s=settings.decision_wait_s,
    )
    servicer = AgentServicer(
        store,
        runtime.producer,
        settings.default_max_iterations,
        checkpoints=checkpoints,
        cancels=cancels,
    )
    runtime.serve_grpc(
        [
            (
                servicer,
                agent_pb2_grpc.add_AgentServiceServicer_to_server,
                agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
            )
        ]
    )
    return AgentLoopParts(settings, runtime, loop, handler, store, checkpoints, table, cancels)


def extend(parts: AgentLoopParts) -> None:
    """THE place for extensions: finish hooks (``parts.handler.add_finish_hook``), extra
    consumers (``parts.runtime.consume``), start/stop hooks. Runs before the service starts."""
    plans = PlanSettings(
        orchestrate=parts.settings.plans_orchestrate,
        consumer_group=parts.settings.plans_consumer_group,
    )
    # Plan state lives beside session checkpoints: one table of keel.checkpoints, not two.
    reporter = install_plans(parts.runtime, plans, store=parts.checkpoint_table)
    parts.handler.add_finish_hook(reporter)


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    parts = build(settings, runtime)
    # One consumer for every record that drives a session, so a session's task, sub-task,
    # decision and cancel records share one group (and the same per-session lock).
    runtime.consume([TASKS, SUBTASKS, APPROVAL_DECISIONS], settings.consumer_group, parts.handler)
    extend(parts)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
