"""Whether a plan can run: the agent loop's judgement of a well-formed ``PlanSpec``.

The wire types only check the shape of the data (``keel_contracts.events.plans``); the rules
here (unique ids, known dependencies, no cycles, references only to dependencies) belong to the
service that runs plans, and ``keel plan`` asks them through the agent loop's public API.
"""

from __future__ import annotations

import re

from keel_contracts.events.plans import REFERENCE, PlanNode, PlanSpec


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
