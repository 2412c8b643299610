"""Composition root of the agent loop: the only place that wires its parts.

The shape every service shares: ``build(settings, runtime)`` wires the parts onto a runtime
(the real one, or ``keel_core.testing.InMemoryRuntime`` in component tests) and starts
nothing; ``serve(settings)`` builds on a ``ServiceRuntime`` and runs it until SIGTERM.
Everything bus-bound (the checkpoint table, the ``keel.control`` follower, the consumers, the
producer) comes from the runtime; the gRPC clients of the other services are built here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keel.agent.v1 import agent_pb2, agent_pb2_grpc
from keel_agent_loop.adapters.checkpoints import FinishedSweeper, TableCheckpoints
from keel_agent_loop.adapters.control import ControlFollower
from keel_agent_loop.adapters.event_history import EventHistory
from keel_agent_loop.adapters.kafka_sink import KafkaEventSink
from keel_agent_loop.adapters.patience import Patience, PatientLLM, PatientMemory, PatientTools
from keel_agent_loop.adapters.peers import CachedCatalogTools, MemoryContext, SampledLLM
from keel_agent_loop.adapters.plan_results import PlanResultsFollower
from keel_agent_loop.adapters.session_index import SessionIndex
from keel_agent_loop.adapters.tracing import OtelStepTracer
from keel_agent_loop.config import Settings
from keel_agent_loop.domain.cancel import CancelFlags
from keel_agent_loop.domain.guarding import OutputGuards
from keel_agent_loop.domain.loop import AgentLoop
from keel_agent_loop.domain.ports import TeeSink
from keel_agent_loop.domain.sessions import SessionStore
from keel_agent_loop.guards import AuditedGuards, GuardsReloader, load_holder
from keel_agent_loop.handlers.grpc_servicer import AgentServicer
from keel_agent_loop.handlers.task_handler import TaskHandler
from keel_agent_loop.metrics import AgentMetrics
from keel_agent_loop.plans import PlanSettings, install_plans
from keel_agent_loop.plans.session import PlanModePort
from keel_agent_loop.usecases import FrontDoor, OutagePolicy, SessionDefaults, SessionRunner
from keel_agent_loop.usecases.plan_door import PlanDoor
from keel_clients import CallOptions, LLMClient, MemoryClient, ToolClient, open_channel
from keel_contracts.topics import (
    APPROVAL_DECISIONS,
    CHECKPOINTS,
    CONTROL,
    PLANS,
    SESSIONS,
    SUBTASKS,
    TASK_EVENTS,
    TASKS,
)
from keel_core import trust
from keel_core.bus.table import Table
from keel_core.grpc.ratelimit import apply_rate_limits
from keel_core.ratelimit import RateLimiter, limit_tasks, rule
from keel_core.runtime import Runtime, ServiceRuntime, run_service

SERVICE = "agent-loop"
# What counts against which rate limit (docs/rate-limits.md); limits are off until set.
RATE_LIMIT_RULES = [
    # A prefix: SubmitPlan counts against the same per-tenant submit bucket as Submit.
    rule("/keel.agent.v1.AgentService/Submit", "submit"),
    rule("/keel.agent.v1.AgentService/", "calls"),
]


@dataclass(frozen=True)
class AgentLoopParts:
    """What ``build`` wired, for tests and for whoever reads the composition."""

    loop: AgentLoop
    sessions: SessionRunner
    front_door: FrontDoor
    handler: TaskHandler
    store: SessionStore
    checkpoints: TableCheckpoints
    # ``keel.checkpoints``, shared with the plans (they keep ``plan:<id>`` keys there).
    checkpoint_table: Table
    cancels: CancelFlags


@dataclass(frozen=True)
class _Peers:
    llm: LLMClient
    tools: CachedCatalogTools
    memory: MemoryContext


def build(settings: Settings, runtime: Runtime) -> AgentLoopParts:
    metrics = AgentMetrics(runtime.registry)
    peers = _peers(settings, runtime)
    # Loaded before the consumers start: a resumed session must find its own checkpoint.
    table = runtime.table(CHECKPOINTS)
    checkpoints = TableCheckpoints(table)
    cancels = CancelFlags(settings.cancel_memory)
    runtime.on_start(ControlFollower(runtime.follower(CONTROL, "control"), cancels).start)
    # Any replica answers for any session (ADR 0013): the keel.sessions index, written in
    # order by this process's store, and the keel.task-events history, both followed.
    index = SessionIndex(runtime.table(SESSIONS))
    runtime.on_start(index.start)
    runtime.on_stop(index.stop)
    # A swept end marker takes the session's summary with it.
    sweeper = FinishedSweeper(
        checkpoints,
        settings.finished_retention_s,
        settings.finished_sweep_interval_s,
        on_expired=index.forget,
    )
    # Started after both tables have loaded (hooks run in order), stopped before them.
    runtime.on_start(sweeper.start)
    runtime.on_stop(sweeper.stop)
    # This replica's own events go into the history as they are written (the sink's echo);
    # other replicas' arrive batched, within 250 ms.
    history = EventHistory(
        runtime.follower(TASK_EVENTS, "history", batched=True), settings.session_store_capacity
    )
    runtime.on_start(history.start)
    runtime.on_stop(history.stop)
    store = SessionStore(settings.session_store_capacity, listener=index)
    # Outages are retried within a step's deadline, then the session parks (SessionRunner).
    patience = Patience(
        settings.outage_step_deadline_s, settings.retry_backoff_s, settings.outage_backoff_max_s
    )
    loop = AgentLoop(
        llm=PatientLLM(SampledLLM(peers.llm), patience),
        tools=PatientTools(peers.tools, patience),
        memory=PatientMemory(peers.memory, patience),
        sink=TeeSink(store, KafkaEventSink(runtime.producer, echo=history.apply)),
        config=settings.loop_config(),
        observer=metrics,
        checkpoints=checkpoints,
        cancels=cancels,
        tracer=OtelStepTracer(),
        plans=PlanModePort(runtime.producer, settings.plan_mode_profile_set()),
        guards=_guards(settings, runtime),
    )
    material = trust.load(settings.trust, SERVICE)
    sessions = SessionRunner(
        loop,
        store,
        runtime.producer,
        runtime.audit,
        metrics,
        checkpoints=checkpoints,
        memory=peers.memory,
        cancels=cancels,
        defaults=SessionDefaults(settings.default_token_budget, settings.default_cost_budget_usd),
        decision_wait_s=settings.decision_wait_s,
        outages=OutagePolicy(settings.outage_limit_s, settings.outage_backoff_max_s),
        verifier=material.approval_verifier() if material else None,
    )
    handler = TaskHandler(sessions)
    limiter = RateLimiter(settings.rate_limits.with_default_rules(RATE_LIMIT_RULES))
    # One consumer for every record that drives a session, so a session's task, sub-task,
    # decision and cancel records share one group (and the same per-session lock).
    runtime.consume(
        [TASKS, SUBTASKS, APPROVAL_DECISIONS],
        settings.consumer_group,
        limit_tasks(limiter, handler),
    )
    front_door = FrontDoor(
        store,
        runtime.producer,
        checkpoints=checkpoints,
        cancels=cancels,
        directory=index,
        history=history,
    )
    plan_door = PlanDoor(runtime.producer, runtime.audit)
    runtime.on_start(PlanResultsFollower(runtime.follower(PLANS, "plan-results"), plan_door).start)
    _serve_agent_service(
        runtime, AgentServicer(front_door, settings.default_max_iterations, plan_door)
    )
    apply_rate_limits(limiter, runtime, SERVICE)
    _extend(settings, runtime, sessions, table)
    return AgentLoopParts(loop, sessions, front_door, handler, store, checkpoints, table, cancels)


def _peers(settings: Settings, runtime: Runtime) -> _Peers:
    """Clients of the llm-gateway, tool-gateway and memory; their channels close last."""
    llm = open_channel(settings.llm_target)
    tool = open_channel(settings.tool_target)
    memory = open_channel(settings.memory_target)

    async def close_channels() -> None:
        for channel in (llm, tool, memory):
            await channel.close()

    # Registered first so it runs last: after gRPC and the consumers have stopped.
    runtime.on_stop(close_channels)
    return _Peers(
        llm=LLMClient(
            llm,
            CallOptions(timeout_s=settings.llm_timeout_s),
            retries=settings.llm_retries,
            backoff_s=settings.retry_backoff_s,
        ),
        tools=CachedCatalogTools(ToolClient(tool, CallOptions(timeout_s=settings.call_timeout_s))),
        memory=MemoryContext(MemoryClient(memory, CallOptions(timeout_s=settings.call_timeout_s))),
    )


def _guards(settings: Settings, runtime: Runtime) -> OutputGuards | None:
    """The guard stage of the guards file, hot-reloaded; None without one. A file that does
    not validate stops the start here, with its ``file:line`` message."""
    if not settings.guards_file:
        return None
    path = Path(settings.guards_file)
    holder = load_holder(path)
    reloader = GuardsReloader(path, holder, runtime.audit, settings.guards_reload_interval_s)
    runtime.on_start(reloader.start)
    runtime.on_stop(reloader.stop)
    return AuditedGuards(holder, runtime.audit)


def _serve_agent_service(runtime: Runtime, servicer: AgentServicer) -> None:
    runtime.serve_grpc(
        [
            (
                servicer,
                agent_pb2_grpc.add_AgentServiceServicer_to_server,
                agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name,
            )
        ]
    )


def _extend(settings: Settings, runtime: Runtime, sessions: SessionRunner, table: Table) -> None:
    """THE place for extensions: finish hooks (``sessions.add_finish_hook``), extra consumers
    (``runtime.consume``), start/stop hooks. Multi-agent plans are the one there is."""
    plans = PlanSettings(
        orchestrate=settings.plans_orchestrate, consumer_group=settings.plans_consumer_group
    )
    # Plan state lives beside session checkpoints: one table of keel.checkpoints, not two.
    sessions.add_finish_hook(install_plans(runtime, plans, store=table))


async def serve(settings: Settings) -> None:
    runtime = ServiceRuntime(SERVICE, settings)
    build(settings, runtime)
    await runtime.run()


def main() -> None:
    run_service(SERVICE, Settings, serve)
