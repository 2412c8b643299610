"""A plan as other agents send it: YAML or JSON text (MCP ``run_plan``, an A2A text part with
the ``run_plan`` skill) or an object (an A2A data part), made into the JSON that the agent
loop's ``SubmitPlan`` takes.

The agent loop judges the plan (ids, dependencies, cycles, fields it does not know, such as
``tools``) and answers INVALID_ARGUMENT with the reason. What only this server knows is which
agent profiles it offers: a node naming another is refused here, as ``run_agent`` refuses an
unknown profile, before anything is submitted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import yaml

from keel_contracts.errors import InvalidArgument


def plan_json(plan: str | dict[str, Any], profiles: list[str]) -> str:
    """The plan as JSON for ``SubmitPlan``; ``InvalidArgument`` naming what is wrong. A plan
    may come wrapped as ``{"plan": {...}}``."""
    data: Any = plan
    if isinstance(plan, str):
        try:
            data = yaml.safe_load(plan)
        except yaml.YAMLError as exc:
            raise InvalidArgument(f"not a plan: neither YAML nor JSON ({exc})") from exc
    if isinstance(data, dict) and set(data) == {"plan"}:
        data = data["plan"]
    if not isinstance(data, dict):
        raise InvalidArgument("not a plan: a plan is an object with a list of nodes")
    unknown = sorted(set(_named_profiles(data)) - set(profiles))
    if unknown:
        raise InvalidArgument(
            f"invalid plan: unknown agent profile {', '.join(map(repr, unknown))}; "
            f"offered: {', '.join(profiles)}"
        )
    return json.dumps(data)


def _named_profiles(plan: dict[str, Any]) -> Iterator[str]:
    """Every agent profile a node names, nested plans' included (a node naming none runs
    with the default profile, as ``run_agent`` without one does)."""
    nodes = plan.get("nodes")
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        profile = node.get("agent_profile")
        if isinstance(profile, str) and profile:
            yield profile
        if isinstance(node.get("plan"), dict):
            yield from _named_profiles(node["plan"])
