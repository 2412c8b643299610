"""A plan written by a model: its answer, parsed and checked like a plan from a user.

Models wrap JSON in prose or code fences and get fields wrong; the parser takes the first JSON
object in the answer (fenced or not), accepts ``{"plan": {...}}`` as well as the plan itself,
and says exactly what is wrong, so the message can go back to the model or to a person.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from keel_agent_loop.plans.validation import PlanInvalid, PlanLimits, check_plan
from keel_contracts.events.plans import PlanSpec

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.DOTALL)

PLAN_INSTRUCTIONS = """\
Answer with one JSON object and nothing else:
{"goal": "<the overall goal>", "max_parallel": 4, "nodes": [
  {"id": "<letters, digits, - or _>", "goal": "<what this agent must do>",
   "depends_on": ["<ids of nodes whose output it needs>"]}]}
A node's goal may include a dependency's output as {deps.<id>} and the overall goal as
{plan.goal}. Nodes without dependencies run in parallel. No cycles."""


class PlanParseError(ValueError):
    """The answer holds no usable plan; the message says why."""


def parse_plan_answer(answer: str, limits: PlanLimits | None = None) -> PlanSpec:
    """The plan in a model's answer, validated (shape and graph, and ``limits`` when given);
    ``PlanParseError`` if not."""
    data = _json_object(answer)
    if isinstance(data.get("plan"), dict) and "nodes" not in data:
        data = data["plan"]
    try:
        spec = PlanSpec.model_validate(data)
    except ValidationError as exc:
        raise PlanParseError(f"the plan does not match the schema: {_errors(exc)}") from exc
    try:
        return check_plan(spec, limits)
    except PlanInvalid as exc:
        raise PlanParseError(f"the plan cannot run: {exc}") from exc


def _json_object(answer: str) -> dict[str, Any]:
    candidates = [m.group(1) for m in _FENCE.finditer(answer)] or [answer]
    last_error = "no JSON object found in the answer"
    for text in candidates:
        start = text.find("{")
        if start < 0:
            continue
        try:
            value, _end = json.JSONDecoder().raw_decode(text, start)
        except json.JSONDecodeError as exc:
            last_error = f"invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            continue
        if isinstance(value, dict):
            return value
        last_error = "the JSON in the answer is not an object"
    raise PlanParseError(last_error)


def _errors(exc: ValidationError, limit: int = 5) -> str:
    parts = [
        f"{'.'.join(str(p) for p in error['loc']) or 'plan'}: {error['msg']}"
        for error in exc.errors()[:limit]
    ]
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")
