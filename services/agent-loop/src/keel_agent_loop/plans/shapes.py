"""Builders for the usual shapes of plan; each result has passed ``check_plan``.

An orchestrator-worker DAG is a ``PlanSpec`` written directly; these cover the shapes people
ask for by name (``keel plan pipeline|debate``).
"""

from __future__ import annotations

from keel_agent_loop.plans.validation import PlanInvalid, check_plan
from keel_contracts.events.plans import PlanNode, PlanSpec, Sampling, Stance


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


DEFAULT_JUDGE = (
    "Judge: each answer below comes from a debater with a named stance. Weigh them, pick the "
    "best and say why, citing the stances by name."
)

# The stances a debate gets when none are given: N debaters are N different voices.
DEFAULT_STANCES: tuple[Stance, ...] = (
    Stance(
        name="strict",
        prompt="Answer strictly: keep to the letter of the question and to what the evidence "
        "clearly supports; reject anything uncertain.",
    ),
    Stance(
        name="liberal",
        prompt="Answer liberally: read the question generously and favour the most useful "
        "answer, taking reasonable liberties where they help.",
    ),
    Stance(
        name="risk-focused",
        prompt="Answer with risk first: look for what could go wrong (failure modes, costs, "
        "harm) and let that shape the answer.",
    ),
    Stance(
        name="pragmatic",
        prompt="Answer pragmatically: prefer the simplest answer that works in practice.",
    ),
    Stance(
        name="contrarian",
        prompt="Answer as a contrarian: test the obvious answer by arguing the other side "
        "before you settle.",
    ),
)


def default_stances(n_agents: int) -> list[Stance]:
    """The first ``n_agents`` default stances; past the list, they repeat with a numbered name
    (``strict-2``), which still gives each debater a system prompt of its own."""
    stances: list[Stance] = []
    for index in range(n_agents):
        base = DEFAULT_STANCES[index % len(DEFAULT_STANCES)]
        round_ = index // len(DEFAULT_STANCES)
        stances.append(
            base if round_ == 0 else base.model_copy(update={"name": f"{base.name}-{round_ + 1}"})
        )
    return stances


def debate(
    question: str,
    n_agents: int = 3,
    judge: str = DEFAULT_JUDGE,
    *,
    stances: list[Stance] | None = None,
    sampling: Sampling | None = None,
    max_parallel: int = 4,
    max_iterations: int = 8,
) -> PlanSpec:
    """Debaters answer the question independently, each from its own stance; a judge reads
    every answer labelled with who gave it.

    ``stances`` names the debaters (their number wins over ``n_agents``); without it the
    debate takes ``n_agents`` of the default stances. ``sampling`` applies to every debater;
    with a seed, debater ``i`` gets ``seed + i - 1`` so no two draw alike. An empty ``judge``
    is the default instruction.
    """
    judge = judge or DEFAULT_JUDGE
    chosen = list(stances) if stances else default_stances(n_agents)
    if not chosen:
        raise PlanInvalid("a debate needs at least one agent")
    names = [s.name for s in chosen]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise PlanInvalid(f"debate stances must differ: {', '.join(repeated)} given twice")
    debaters = [
        PlanNode(
            id=f"agent-{i}",
            goal="{plan.goal}",
            max_iterations=max_iterations,
            stance=stance,
            sampling=_nth(sampling, i - 1),
        )
        for i, stance in enumerate(chosen, start=1)
    ]
    answers = "\n".join(
        f"[{node.stance.name if node.stance else node.id}] ({node.id}): {{deps.{node.id}}}"
        for node in debaters
    )
    judge_node = PlanNode(
        id="judge",
        goal=f"{judge}\nQuestion: {{plan.goal}}\n{answers}",
        depends_on=[d.id for d in debaters],
        max_iterations=max_iterations,
    )
    return check_plan(
        PlanSpec(goal=question, max_parallel=max_parallel, nodes=[*debaters, judge_node])
    )


def _nth(sampling: Sampling | None, offset: int) -> Sampling | None:
    if sampling is None or sampling.seed is None:
        return sampling
    return sampling.model_copy(update={"seed": sampling.seed + offset})


def sub_plan(
    node_id: str, goal: str, plan: PlanSpec, depends_on: list[str] | None = None
) -> PlanNode:
    """A node that is itself a plan (hierarchy): a worker that orchestrates workers."""
    return PlanNode(id=node_id, goal=goal, depends_on=depends_on or [], kind="plan", plan=plan)
