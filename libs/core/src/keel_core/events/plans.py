"""Multi-agent plans on the wire: the plan spec and the events on ``keel.plans``.

The spec lives here, next to its events, because three parties build or read it: the user's
``keel plan`` command, a model answering with a plan, and the agent loop that runs it. Every
plan event is keyed by the plan id, so one plan's events stay in order on one partition.

``PlanSpec`` only checks the shape of the data; whether the graph makes sense (unique ids,
known dependencies, no cycles) is checked by ``check_plan``, so a bad plan can still be
*received* and then answered with a clear failure instead of being dead-lettered.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from keel_core.events.envelope import EventData

NODE_ID = r"^[A-Za-z0-9_-]{1,64}$"
# References a node goal may make: the output of a dependency, or the plan's own goal.
REFERENCE = re.compile(r"\{(deps\.(?P<node>[A-Za-z0-9_-]+)|plan\.goal)\}")

NodeStatus = Literal["pending", "running", "succeeded", "failed", "cancelled"]
PlanStatus = Literal["running", "succeeded", "failed"]


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


class PlanSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Empty in a file or a model's answer: the submitter picks one.
    plan_id: str = ""
    goal: str = ""
    max_parallel: int = Field(default=4, ge=1, le=256)
    nodes: list[PlanNode] = Field(default_factory=list)

    def node(self, node_id: str) -> PlanNode:
        return next(n for n in self.nodes if n.id == node_id)


PlanNode.model_rebuild()


class PlanInvalid(ValueError):
    """A plan that cannot run; the message says why in terms the author can act on."""


def check_plan(spec: PlanSpec) -> PlanSpec:
    """Reject a plan with no nodes, duplicate ids, unknown dependencies, references to nodes
    that are not dependencies, a cycle (named), or a nested plan with any of these."""
    problems = _problems(spec, "")
    if problems:
        raise PlanInvalid("; ".join(problems))
    return spec


def _problems(spec: PlanSpec, where: str) -> list[str]:
    if not spec.nodes:
        return [f"{where}plan has no nodes"]
    problems: list[str] = []
    ids = [n.id for n in spec.nodes]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        problems.append(f"{where}duplicate node ids: {', '.join(duplicates)}")
    known = set(ids)
    for node in spec.nodes:
        problems += _node_problems(node, known, where)
    if not problems:
        cycle = find_cycle(spec)
        if cycle:
            problems.append(f"{where}cycle: {' -> '.join(cycle)}")
    return problems


def _node_problems(node: PlanNode, known: set[str], where: str) -> list[str]:
    problems: list[str] = []
    unknown = [d for d in node.depends_on if d not in known]
    if unknown:
        problems.append(f"{where}node {node.id} depends on unknown {', '.join(unknown)}")
    referenced = {m.group("node") for m in REFERENCE.finditer(node.goal) if m.group("node")}
    stray = sorted(referenced - set(node.depends_on))
    if stray:
        problems.append(
            f"{where}node {node.id} uses the output of {', '.join(stray)} without depending on it"
        )
    if node.kind == "plan":
        if node.plan is None:
            problems.append(f"{where}node {node.id} is a plan but has no nested plan")
        else:
            problems += _problems(node.plan, f"{where}{node.id}: ")
    elif node.plan is not None:
        problems.append(f"{where}node {node.id} has a nested plan but kind {node.kind!r}")
    return problems


def find_cycle(spec: PlanSpec) -> list[str]:
    """A dependency cycle as ``[a, b, ..., a]`` (each depends on the next), or ``[]``."""
    edges = {n.id: list(n.depends_on) for n in spec.nodes}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in edges.get(node, []):
            if state.get(dep) == 1:
                return path[path.index(dep) :] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return []

    for node_id in edges:
        if node_id not in state:
            found = visit(node_id)
            if found:
                return found
    return []


def render_goal(template: str, plan_goal: str, outputs: dict[str, str]) -> str:
    """Fill ``{deps.x}`` and ``{plan.goal}``; any other braces are left as written."""

    def substitute(match: re.Match[str]) -> str:
        node = match.group("node")
        if node is None:
            return plan_goal
        return outputs.get(node, match.group(0))

    return REFERENCE.sub(substitute, template)


# Builders for the usual shapes. An orchestrator-worker DAG is a ``PlanSpec`` written directly.


def pipeline(goal: str, stages: list[str], *, max_iterations: int = 8) -> PlanSpec:
    """A chain: stage 1 gets the plan goal's place, each later stage the previous output.

    A stage may say where the previous output goes with ``{input}``; otherwise it is appended
    after a blank line.
    """
    nodes: list[PlanNode] = []
    for index, stage in enumerate(stages, start=1):
        node_id = f"stage-{index}"
        text = stage
        depends: list[str] = []
        if nodes:
            previous = "{deps." + nodes[-1].id + "}"
            depends = [nodes[-1].id]
            text = (
                stage.replace("{input}", previous)
                if "{input}" in stage
                else f"{stage}\n\n{previous}"
            )
        nodes.append(
            PlanNode(id=node_id, goal=text, depends_on=depends, max_iterations=max_iterations)
        )
    return check_plan(PlanSpec(goal=goal or (stages[0] if stages else ""), nodes=nodes))


def debate(
    question: str,
    n_agents: int = 3,
    judge: str = "Judge: pick the best answer and say why.",
    *,
    max_parallel: int = 4,
    max_iterations: int = 8,
) -> PlanSpec:
    """N agents answer the question independently; a judge reads every answer."""
    if n_agents < 1:
        raise PlanInvalid("a debate needs at least one agent")
    debaters = [
        PlanNode(id=f"agent-{i}", goal="{plan.goal}", max_iterations=max_iterations)
        for i in range(1, n_agents + 1)
    ]
    answers = "\n".join(f"Answer {i}: {{deps.agent-{i}}}" for i in range(1, n_agents + 1))
    judge_node = PlanNode(
        id="judge",
        goal=f"{judge}\nQuestion: {{plan.goal}}\n{answers}",
        depends_on=[d.id for d in debaters],
        max_iterations=max_iterations,
    )
    return check_plan(
        PlanSpec(goal=question, max_parallel=max_parallel, nodes=[*debaters, judge_node])
    )


def sub_plan(
    node_id: str, goal: str, plan: PlanSpec, depends_on: list[str] | None = None
) -> PlanNode:
    """A node that is itself a plan (hierarchy): a worker that orchestrates workers."""
    return PlanNode(id=node_id, goal=goal, depends_on=depends_on or [], kind="plan", plan=plan)


# Events on keel.plans (key = plan id) and the plan's checkpoint on keel.checkpoints.


class PlanSubmitted(EventData):
    event_type: ClassVar[str] = "keel.plan.submitted"

    plan: PlanSpec
    # Set when this plan is a node of another plan (a hierarchy).
    parent_plan_id: str = ""
    parent_node_id: str = ""
    submitted_by: str = ""


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
