"""Builders for the usual shapes of plan; each result has passed ``check_plan``.

An orchestrator-worker DAG is a ``PlanSpec`` written directly; these cover the shapes people
ask for by name (``keel plan pipeline|debate``).
"""

from __future__ import annotations

from keel_agent_loop.plans.validation import PlanInvalid, check_plan
from keel_contracts.events.plans import PlanNode, PlanSpec


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
