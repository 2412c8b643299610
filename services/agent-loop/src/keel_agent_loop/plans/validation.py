"""Whether a plan can run: the agent loop's judgement of a well-formed ``PlanSpec``.

The wire types only check the shape of the data (``keel_contracts.events.plans``); the rules
here (unique ids, known dependencies, no cycles, references only to dependencies) belong to the
service that runs plans, and ``keel plan`` asks them through the agent loop's public API.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keel_contracts.events.plans import REFERENCE, PlanNode, PlanSpec


class PlanInvalid(ValueError):
    """A plan that cannot run; the message says why in terms the author can act on."""


@dataclass(frozen=True)
class PlanLimits:
    """How big a plan may be. A person's plan file is taken as written; a plan a model wrote
    (plan mode) is held to these, since a model that loops or over-plans would otherwise fan
    out into hundreds of sessions on one request.

    ``max_nodes`` counts every node, nested plans' included; ``max_depth`` is the nesting (a
    plan inside a plan node is depth 2); ``max_fan_out`` is the most nodes that may start
    from one point: the nodes of a plan that depend on nothing, or on one given node.
    ``profiles``, when set, are the agent profiles a node may name.
    """

    max_nodes: int = 32
    max_depth: int = 3
    max_fan_out: int = 8
    profiles: frozenset[str] | None = None


def check_plan(spec: PlanSpec, limits: PlanLimits | None = None) -> PlanSpec:
    """Reject a plan with no nodes, duplicate ids, unknown dependencies, references to nodes
    that are not dependencies, a cycle (named), or a nested plan with any of these; with
    ``limits``, also one that is too big, too deep, fans out too wide or names an unknown
    agent profile."""
    problems = _problems(spec, "")
    if not problems and limits is not None:
        problems = _limit_problems(spec, limits)
    if problems:
        raise PlanInvalid("; ".join(problems))
    return spec


def _limit_problems(spec: PlanSpec, limits: PlanLimits) -> list[str]:
    problems: list[str] = []
    total = count_nodes(spec)
    if total > limits.max_nodes:
        problems.append(f"too many nodes: {total} (at most {limits.max_nodes})")
    depth = plan_depth(spec)
    if depth > limits.max_depth:
        problems.append(f"nested too deep: {depth} levels (at most {limits.max_depth})")
    problems += _walk_limits(spec, limits, "")
    return problems


def _walk_limits(spec: PlanSpec, limits: PlanLimits, where: str) -> list[str]:
    problems: list[str] = []
    starts: dict[str, int] = {"": 0}
    for node in spec.nodes:
        for source in node.depends_on or [""]:
            starts[source] = starts.get(source, 0) + 1
    for source, width in starts.items():
        if width > limits.max_fan_out:
            origin = f"node {source}" if source else "the start"
            problems.append(
                f"{where}{width} nodes start from {origin} (fan-out at most {limits.max_fan_out})"
            )
    for node in spec.nodes:
        if node.kind == "agent" and limits.profiles is not None:
            if node.agent_profile not in limits.profiles:
                known = ", ".join(sorted(limits.profiles)) or "none"
                problems.append(
                    f"{where}node {node.id} names unknown agent profile "
                    f"{node.agent_profile!r} (known: {known})"
                )
        if node.plan is not None:
            problems += _walk_limits(node.plan, limits, f"{where}{node.id}: ")
    return problems


def count_nodes(spec: PlanSpec) -> int:
    """Every node of the plan and of its nested plans."""
    return sum(1 + (count_nodes(n.plan) if n.plan else 0) for n in spec.nodes)


def plan_depth(spec: PlanSpec) -> int:
    """1 for a flat plan, one more for each level of nested plans."""
    return 1 + max((plan_depth(n.plan) for n in spec.nodes if n.plan), default=0)


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
