"""Multi-agent plans on the wire: the plan spec and the events on ``keel.plans``.

The spec lives here, next to its events, because three parties build or read it: the user's
``keel plan`` command, a model answering with a plan, and the agent loop that runs it. Every
plan event is keyed by the plan id, so one plan's events stay in order on one partition.

``PlanSpec`` only checks the shape of the data; whether the graph makes sense (unique ids,
known dependencies, no cycles) is the agent loop's judgement (``keel_agent_loop.plans.check_plan``),
so a bad plan can still be *received* and then answered with a clear failure instead of being
dead-lettered.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.events.envelope import EventData

NODE_ID = r"^[A-Za-z0-9_-]{1,64}$"
# References a node goal may make: the output of a dependency, or the plan's own goal.
REFERENCE = re.compile(r"\{(deps\.(?P<node>[A-Za-z0-9_-]+)|plan\.goal)\}")

NodeStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
PlanStatus = Literal["running", "succeeded", "failed"]


class Stance(BaseModel):
    """Who a node speaks as: a short name (cited by a debate's judge) and the text added to
    the session's system prompt. Debaters with different stances see different prompts, so
    their answers (and their LLM cache keys) differ even at temperature 0."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,40}$")
    prompt: str = Field(default="", max_length=4_000)


class Sampling(BaseModel):
    """How a node's model samples. Temperature 0 is deterministic and served from the LLM
    gateway's response cache; above 0 every call is a fresh draw (the agent loop never opts
    a sampled call into the cache). ``seed`` is recorded with the node for reproducibility."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = None


class PlanNode(BaseModel):
    """One step of a plan: an agent session, or (``kind="plan"``) a whole plan of its own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NODE_ID)
    # A template: ``{deps.<node_id>}`` is that dependency's output, ``{plan.goal}`` the plan's.
    goal: str = Field(min_length=1, max_length=20_000)
    depends_on: list[str] = Field(default_factory=list)
    kind: Literal["agent", "plan"] = "agent"
    agent_profile: str = "default"
    max_iterations: int = Field(default=8, ge=1, le=200)
    # The nested plan of a ``kind="plan"`` node; its goal is this node's rendered goal.
    plan: PlanSpec | None = None
    # Optional persona and sampling of an agent node (debates); None: the profile's own.
    stance: Stance | None = None
    sampling: Sampling | None = None


class PlanSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty in a file or a model's answer: the submitter picks one.
    plan_id: str = ""
    goal: str = ""
    # Whose plan it is: every session it starts runs as this tenant (budgets, memory, policy,
    # audit). Set by whoever admits the plan, never taken from its author: the tenant of the
    # SubmitPlan caller's token, of the session in plan mode, of the parent for a nested plan.
    tenant: str = "default"
    max_parallel: int = Field(default=4, ge=1, le=256)
    nodes: list[PlanNode] = Field(default_factory=list)

    def node(self, node_id: str) -> PlanNode:
        return next(n for n in self.nodes if n.id == node_id)


PlanNode.model_rebuild()


# Events on keel.plans (key = plan id) and the plan's checkpoint on keel.checkpoints.


class PlanSubmitted(EventData):
    event_type: ClassVar[str] = "keel.plan.submitted"

    plan: PlanSpec
    # Set when this plan is a node of another plan (a hierarchy).
    parent_plan_id: str = ""
    parent_node_id: str = ""
    submitted_by: str = ""
    # Set when a session submitted the plan (plan mode) and waits for it: the orchestrator
    # sends the plan's ``PlanFinished`` to that session too (on keel.subtasks, key = session).
    parent_session_id: str = ""


class NodeDispatched(EventData):
    event_type: ClassVar[str] = "keel.plan.node_dispatched"

    plan_id: str
    node_id: str
    session_id: str
    goal: str
    kind: Literal["agent", "plan"] = "agent"


class NodeFinished(EventData):
    event_type: ClassVar[str] = "keel.plan.node_finished"

    plan_id: str
    node_id: str
    session_id: str
    status: Literal["succeeded", "failed"]
    output: str = ""
    error: str = ""


class PlanFinished(EventData):
    event_type: ClassVar[str] = "keel.plan.finished"

    plan_id: str
    status: Literal["succeeded", "failed"]
    output: str = ""
    error: str = ""
    # Every node's final status, cancelled ones included (for timelines and post-mortems).
    nodes: dict[str, NodeStatus] = Field(default_factory=dict)


class PlanCancelRequested(EventData):
    """Asks the orchestrator to stop a plan (key = the plan id, so it is ordered after the
    plan's submission): pending nodes never start, running sessions are asked to cancel, a
    nested plan is cancelled in turn, and the plan ends ``failed`` with the reason. Sent when a
    plan-mode session parked on the plan is cancelled; a cancel of an unknown or finished plan
    is ignored."""

    event_type: ClassVar[str] = "keel.plan.cancel_requested"

    plan_id: str
    reason: str = ""
    requested_by: str = ""


class PlanCheckpoint(EventData):
    """A plan's scheduler state on the compacted ``keel.checkpoints`` (key ``plan:<id>``)."""

    event_type: ClassVar[str] = "keel.plan.checkpoint"

    status: PlanStatus
    state: dict[str, Any]


def node_session_id(plan_id: str, node_id: str) -> str:
    """The session (and child plan) id of a node. Node ids have no dots, so the last dot
    splits it back (``split_node_session``) even for nested plans."""
    return f"{plan_id}.{node_id}"


def split_node_session(session_id: str) -> tuple[str, str] | None:
    plan_id, dot, node_id = session_id.rpartition(".")
    if not dot or not plan_id or not re.fullmatch(NODE_ID, node_id):
        return None
    return plan_id, node_id


# A node's stance and sampling travel to its session in ``TaskSubmitted.metadata`` (strings).
STANCE_KEY = "stance"
STANCE_PROMPT_KEY = "stance_prompt"
TEMPERATURE_KEY = "temperature"
SEED_KEY = "seed"


def persona_metadata(stance: Stance | None, sampling: Sampling | None) -> dict[str, str]:
    """The task metadata that carries a node's stance and sampling (empty for neither)."""
    found: dict[str, str] = {}
    if stance is not None:
        found[STANCE_KEY] = stance.name
        found[STANCE_PROMPT_KEY] = stance.prompt
    if sampling is not None:
        found[TEMPERATURE_KEY] = repr(sampling.temperature)
        if sampling.seed is not None:
            found[SEED_KEY] = str(sampling.seed)
    return found


def stance_of(metadata: dict[str, str]) -> Stance | None:
    """The stance a session's metadata names, or None (also for a malformed name)."""
    name = metadata.get(STANCE_KEY, "")
    if not name:
        return None
    try:
        return Stance(name=name, prompt=metadata.get(STANCE_PROMPT_KEY, ""))
    except ValueError:
        return None


def sampling_of(metadata: dict[str, str]) -> Sampling | None:
    """The sampling a session's metadata names, or None (also for malformed values)."""
    if TEMPERATURE_KEY not in metadata:
        return None
    try:
        seed = metadata.get(SEED_KEY)
        return Sampling(
            temperature=float(metadata[TEMPERATURE_KEY]),
            seed=int(seed) if seed else None,
        )
    except ValueError:
        return None
