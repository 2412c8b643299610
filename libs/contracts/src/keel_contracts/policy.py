"""The policy service's verdicts, as its callers see them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Decision = Literal["allow", "deny", "require_approval"]


class PolicyVerdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    rule_id: str
    reason: str = ""
    policy_set: str = ""


class PolicyRule(BaseModel):
    """One rule as ``ExplainRules`` lists it."""

    model_config = ConfigDict(frozen=True)

    id: str
    priority: int
    tool: str
    decision: Decision | None
    description: str = ""
