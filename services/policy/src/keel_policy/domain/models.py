"""Policy rules as data. Validated on load, so a bad rule fails at start-up, not at call time."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Decision = Literal["allow", "deny", "require_approval"]


class ArgConstraint(BaseModel):
    """A condition on one argument, addressed by a dotted path (``recipient.domain``).

    Every condition given must hold; a missing argument never matches.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    equals: Any = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _has_condition(self) -> ArgConstraint:
        if self.equals is None and self.regex is None and self.min is None and self.max is None:
            raise ValueError("a constraint needs one of equals, regex, min, max")
        return self


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    # Higher runs first; equal priorities keep file order.
    priority: int = 0
    # Glob over tool names: "calculator", "fs.*", "*".
    tool: str = Field(min_length=1)
    decision: Decision
    description: str = ""
    # Agent profiles the rule applies to; "*" means all.
    profiles: tuple[str, ...] = ("*",)
    when: tuple[ArgConstraint, ...] = ()


class PolicySet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _unique_ids(self) -> PolicySet:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
        return self


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: Decision
    rule_id: str
    reason: str
