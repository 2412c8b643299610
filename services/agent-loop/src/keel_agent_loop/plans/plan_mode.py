"""Plan mode: a session asks its model for a plan, runs it as a plan, and answers from it.

A profile configured for plan mode is offered one more tool, ``plan`` (``plan_tool``), whose
arguments are a ``PlanSpec``. A call of it is not sent to the tool gateway: the session checks
the plan (``plan_from_call``: the graph rules of ``check_plan`` and ``MODEL_PLAN_LIMITS``, so a
model cannot fan out into hundreds of sessions), and a plan that fails goes back to the model as
the call's error, for it to fix. A good one is submitted on ``keel.plans`` as
``plan_submission`` with the session as its ``parent_session_id``: the session parks, like a
session waiting for an approval, and the orchestrator sends the plan's ``PlanFinished`` to the
session's own lane when the plan ends, where ``plan_observation`` is the call's result.

The plan id is derived from the call (``plan_id_for``): a session resumed from its checkpoint
submits the same plan again, which the orchestrator ignores as a duplicate.
"""

from __future__ import annotations

import json
from typing import Any

from keel_agent_loop.plans.from_model import parse_plan_answer
from keel_agent_loop.plans.validation import PlanLimits
from keel_contracts.chat import ToolSpec
from keel_contracts.events.plans import PlanFinished, PlanSpec, PlanSubmitted
from keel_contracts.untrusted import mark_untrusted, mark_untrusted_error

PLAN_TOOL_NAME = "plan"
MODEL_PLAN_LIMITS = PlanLimits()

_DESCRIPTION = (
    "Split the task into a plan of agents that run in parallel where they can: each node is an "
    "agent session (or, with kind 'plan', a plan of its own); a node's goal may quote a "
    "dependency's output as {deps.<id>} and the overall goal as {plan.goal}. No cycles; at most "
    "{nodes} nodes, {depth} levels and {fan_out} nodes starting from one point. The result of "
    "the call is the plan's output."
)


def plan_tool(limits: PlanLimits = MODEL_PLAN_LIMITS) -> ToolSpec:
    """The ``plan`` tool as the model is offered it: the plan spec's own JSON Schema."""
    description = (
        _DESCRIPTION.replace("{nodes}", str(limits.max_nodes))
        .replace("{depth}", str(limits.max_depth))
        .replace("{fan_out}", str(limits.max_fan_out))
    )
    return ToolSpec(
        name=PLAN_TOOL_NAME,
        description=description,
        parameters_json_schema=json.dumps(_spec_schema(), sort_keys=True),
    )


def _spec_schema() -> dict[str, Any]:
    """``PlanSpec``'s schema with the plan itself at the top (providers want an object there,
    not a ``$ref``); the nested plans still refer to it through ``$defs``."""
    schema = PlanSpec.model_json_schema()
    defs: dict[str, Any] = schema.get("$defs", {})
    # The tenant is the session's, never the model's choice: not offered at any level.
    for definition in (schema, *defs.values()):
        definition.get("properties", {}).pop("tenant", None)
    top = dict(defs.get("PlanSpec", schema))
    return {**top, "$defs": defs}


def plan_from_call(arguments_json: str, limits: PlanLimits = MODEL_PLAN_LIMITS) -> PlanSpec:
    """The plan in a ``plan`` call's arguments (the spec, or ``{"plan": spec}``), checked;
    ``PlanParseError`` with a message for the model otherwise."""
    return parse_plan_answer(arguments_json, limits)


def plan_id_for(session_id: str, iteration: int, index: int) -> str:
    """The plan of the ``index``-th call of step ``iteration``: the same on every replay."""
    return f"{session_id}.plan-{iteration}-{index}"


def plan_submission(
    session_id: str,
    iteration: int,
    index: int,
    spec: PlanSpec,
    goal: str,
    tenant: str = "default",
) -> PlanSubmitted:
    """What the session publishes on keel.plans (key = the plan id) to run ``spec``; a plan
    without a goal of its own gets the session's. The plan is the session's ``tenant``'s,
    whatever the model wrote: a model cannot move work to another tenant."""
    plan_id = plan_id_for(session_id, iteration, index)
    plan = spec.model_copy(update={"plan_id": plan_id, "goal": spec.goal or goal, "tenant": tenant})
    return PlanSubmitted(
        plan=plan, parent_session_id=session_id, submitted_by=f"session:{session_id}"
    )


def plan_observation(finished: PlanFinished) -> str:
    """The ``plan`` call's result for the model. The output was written by other models'
    sessions, so it is marked as untrusted data like any tool's."""
    if finished.status == "succeeded":
        return mark_untrusted(PLAN_TOOL_NAME, finished.output)
    return mark_untrusted_error(PLAN_TOOL_NAME, finished.error or "the plan failed")
