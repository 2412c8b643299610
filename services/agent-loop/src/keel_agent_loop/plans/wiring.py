"""How the agent loop takes on plans; called once from ``app.py``.

Every replica reports its subtasks' ends (the returned finish hook). Replicas with
``orchestrate`` on also consume ``keel.plans`` in their own consumer group and keep plan state
in the compacted ``keel.checkpoints`` under ``plan:<plan_id>``, loaded before consuming starts,
so a restarted or rebalanced orchestrator continues every plan where it stood.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from keel_agent_loop.plans.handler import PlanHandler
from keel_agent_loop.plans.reporting import PlanReporter
from keel_agent_loop.plans.store import PlanStore
from keel_contracts.topics import CHECKPOINTS, PLANS
from keel_core.runtime import Runtime


class PlanSettings(BaseModel):
    """Plan settings; the agent loop's ``Settings`` carries them as ``plans_*`` fields."""

    orchestrate: bool = True
    consumer_group: str = Field(default="keel-agent-loop-plans", min_length=1)


def install_plans(
    runtime: Runtime, settings: PlanSettings, store: PlanStore | None = None
) -> PlanReporter:
    """Register the plan orchestrator on ``runtime``; the finish hook for the task handler.

    ``store`` may be a table of ``keel.checkpoints`` the service already has (one table
    instead of two); it must be started before the consumers. Without it, the plans get
    a table of their own, started and stopped with the runtime.
    """
    reporter = PlanReporter(runtime.producer)
    if not settings.orchestrate:
        return reporter
    if store is None:
        store = runtime.table(CHECKPOINTS, f"{runtime.name}-plans")
    runtime.consume(
        [PLANS], settings.consumer_group, PlanHandler(store, runtime.producer, audit=runtime.audit)
    )
    return reporter
