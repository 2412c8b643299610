"""What the engine answers: a verdict, the shadow's verdict beside it, and explanations."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from keel_policy.domain.models import Decision
from keel_policy.domain.state import Charge

DEFAULT_DENY_RULE = "default-deny"


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    rule_id: str
    reason: str
    # The policy set that decided ("" when no set was selected: deny by default).
    policy_set: str = ""


class Outcome(BaseModel):
    """The enforced verdict and, when the selected set has a shadow candidate, its verdict."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    shadow: Verdict | None = None
    # What the call adds to running totals if it goes ahead (reserved by the use case).
    charges: tuple[Charge, ...] = ()


class ConditionTrace(BaseModel):
    model_config = ConfigDict(frozen=True)

    condition: str
    passed: bool
    detail: str


class RuleTrace(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule_id: str
    priority: int
    tool: str
    decision: Decision
    matched: bool
    reason: str
    conditions: tuple[ConditionTrace, ...] = ()


class Explanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    rules: tuple[RuleTrace, ...]
    shadow: Verdict | None = None
    # Selectors tried, most specific first; the one that decided is verdict.policy_set.
    selection: tuple[str, ...] = ()
