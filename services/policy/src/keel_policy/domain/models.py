"""Policy rules and sets as data. Validated on load, so a bad rule fails at load, not at call
time (a hot reload that fails validation keeps the previous policy)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from keel_policy.domain.jsonpath import parse

Decision = Literal["allow", "deny", "require_approval"]
Quantifier = Literal["any", "all"]


class ArgConstraint(BaseModel):
    """A condition on the arguments.

    ``path`` is a JSONPath (``$.recipients[*].domain``, see ``domain/jsonpath.py``) or a plain
    dotted path of object keys (``recipient.domain``). Every test given (equals, one_of, regex,
    min/max) must hold for a selected value; ``match`` says whether any or all selected values
    must pass. A path that selects nothing never matches, whatever the quantifier.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    match: Quantifier = "any"
    equals: Any = None
    one_of: tuple[Any, ...] | None = None
    regex: str | None = None
    min: float | None = None
    max: float | None = None

    @field_validator("path")
    @classmethod
    def _parses(cls, value: str) -> str:
        if value.startswith("$"):
            parse(value)
        elif any(not part for part in value.split(".")):
            raise ValueError(f"invalid dotted path {value!r}: empty key")
        return value

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
        tests = (self.equals, self.one_of, self.regex, self.min, self.max)
        if all(test is None for test in tests):
            raise ValueError("a constraint needs one of equals, one_of, regex, min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    # Higher runs first; equal priorities keep file order.
    priority: int = 0
    # Glob over tool names: "calculator", "fs.*", "send_*", "*".
    tool: str = Field(min_length=1)
    decision: Decision
    description: str = ""
    # Agent profiles the rule applies to; "*" means all.
    profiles: tuple[str, ...] = ("*",)
    # Every constraint must hold for the rule to match.
    when: tuple[ArgConstraint, ...] = ()


def _unique_ids(rules: tuple[Rule, ...]) -> tuple[Rule, ...]:
    seen: dict[str, int] = {}
    for index, rule in enumerate(rules):
        if rule.id in seen:
            raise ValueError(f"duplicate rule id {rule.id!r} (rules {seen[rule.id]} and {index})")
        seen[rule.id] = index
    return rules


Rules = Annotated[tuple[Rule, ...], AfterValidator(_unique_ids)]


class ShadowPolicy(BaseModel):
    """A candidate policy evaluated beside the active one: audited, never enforced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    # Start from another set's rules (often the enclosing set's own name) and change a few.
    extends: str | None = None
    rules: Rules = ()


class PolicySet(BaseModel):
    """The rules for one (tenant, profile) selector; absent selectors match any value."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="default", min_length=1)
    tenant: str | None = Field(default=None, min_length=1)
    profile: str | None = Field(default=None, min_length=1)
    description: str = ""
    # Inherit another set's rules; a rule here with the same id replaces the inherited one.
    extends: str | None = None
    rules: Rules = ()
    shadow: ShadowPolicy | None = None

    @property
    def selector(self) -> tuple[str | None, str | None]:
        return (self.tenant, self.profile)


_SINGLE_SET_FIELDS = frozenset(PolicySet.model_fields)


class PolicyDocument(BaseModel):
    """One policy file: either one set at the top level (``rules:`` ...) or ``sets:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    sets: tuple[PolicySet, ...] = ()
    name: str = Field(default="default", min_length=1)
    tenant: str | None = Field(default=None, min_length=1)
    profile: str | None = Field(default=None, min_length=1)
    description: str = ""
    extends: str | None = None
    rules: Rules = ()
    shadow: ShadowPolicy | None = None

    @field_validator("sets")
    @classmethod
    def _distinct_sets(cls, sets: tuple[PolicySet, ...]) -> tuple[PolicySet, ...]:
        names: dict[str, int] = {}
        selectors: dict[tuple[str | None, str | None], int] = {}
        for index, policy_set in enumerate(sets):
            if policy_set.name in names:
                raise ValueError(
                    f"duplicate set name {policy_set.name!r} (sets {names[policy_set.name]} "
                    f"and {index})"
                )
            if policy_set.selector in selectors:
                raise ValueError(
                    f"sets {selectors[policy_set.selector]} and {index} both select "
                    f"tenant={policy_set.tenant or '*'} profile={policy_set.profile or '*'}"
                )
            names[policy_set.name] = index
            selectors[policy_set.selector] = index
        return sets

    @model_validator(mode="after")
    def _one_form(self) -> PolicyDocument:
        top_level = (self.model_fields_set & _SINGLE_SET_FIELDS) - {"version"}
        if self.sets and top_level:
            raise ValueError(
                f"a file has either sets or one top-level set, not both (found sets and "
                f"{', '.join(sorted(top_level))})"
            )
        return self

    def policy_sets(self) -> tuple[PolicySet, ...]:
        if self.sets:
            return self.sets
        fields = self.model_dump(include=set(_SINGLE_SET_FIELDS))
        return (PolicySet.model_validate(fields),)


class PolicyBundle(BaseModel):
    """Every set loaded from one file or a directory; ``sources[i]`` names the file of
    ``sets[i]`` (for error messages)."""

    model_config = ConfigDict(frozen=True)

    sets: tuple[PolicySet, ...] = ()
    sources: tuple[str, ...] = ()

    def source_of(self, index: int) -> str:
        return self.sources[index] if index < len(self.sources) else "policy"
