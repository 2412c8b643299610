"""Multi-agent plans: DAGs of agent sessions (and of plans) run over ``keel.plans`` and
``keel.subtasks``. The plan spec and its events are in ``keel_contracts.events.plans``."""

from keel_agent_loop.plans.from_model import PLAN_INSTRUCTIONS, PlanParseError, parse_plan_answer
from keel_agent_loop.plans.handler import PlanHandler
from keel_agent_loop.plans.plan_mode import (
    MODEL_PLAN_LIMITS,
    PLAN_TOOL_NAME,
    plan_from_call,
    plan_observation,
    plan_submission,
    plan_tool,
)
from keel_agent_loop.plans.reporting import PlanReporter, plan_node_of
from keel_agent_loop.plans.scheduler import Dispatch, NodeRun, PlanState
from keel_agent_loop.plans.shapes import (
    DEFAULT_STANCES,
    debate,
    default_stances,
    pipeline,
    sub_plan,
)
from keel_agent_loop.plans.store import MemoryPlanStore, PlanStore, state_key
from keel_agent_loop.plans.validation import PlanInvalid, PlanLimits, check_plan
from keel_agent_loop.plans.wiring import PlanSettings, install_plans
from keel_contracts.events.plans import PlanNode, PlanSpec

__all__ = [
    "DEFAULT_STANCES",
    "MODEL_PLAN_LIMITS",
    "PLAN_INSTRUCTIONS",
    "PLAN_TOOL_NAME",
    "Dispatch",
    "MemoryPlanStore",
    "NodeRun",
    "PlanHandler",
    "PlanInvalid",
    "PlanLimits",
    "PlanNode",
    "PlanParseError",
    "PlanReporter",
    "PlanSettings",
    "PlanSpec",
    "PlanState",
    "PlanStore",
    "check_plan",
    "debate",
    "default_stances",
    "install_plans",
    "parse_plan_answer",
    "pipeline",
    "plan_from_call",
    "plan_node_of",
    "plan_observation",
    "plan_submission",
    "plan_tool",
    "state_key",
    "sub_plan",
]
