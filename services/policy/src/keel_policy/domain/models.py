"""Policy rules and sets as data. Validated on load, so a bad rule fails at load, not at call
time (a hot reload that fails validation keeps the previous policy)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from keel_policy.domain.conditions import NAME, ArgConstraint, Condition

__all__ = ["ArgConstraint", "Condition", "Decision", "PolicyBundle", "PolicySet", "Rule"]

Decision = Literal["allow", "deny", "require_approval"]


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
    # Every condition must hold for the rule to match (``domain/conditions.py``).
    when: tuple[Condition, ...] = ()


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


class ListSpec(BaseModel):
    """A named list: literal ``items``, a ``file`` (relative to the policy file; one item a
    line, ``#`` comments, or a JSON/YAML list; re-read whenever it changes) and/or the items
    kept on the ``keel.policy.lists`` topic (``topic: true``, changed by ``keel policy list``
    while the service runs). A bare YAML list means ``items``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items: tuple[Any, ...] = ()
    file: str | None = Field(default=None, min_length=1)
    topic: bool = False

    @model_validator(mode="before")
    @classmethod
    def _bare_list(cls, value: Any) -> Any:
        return {"items": value} if isinstance(value, list | tuple) else value


class VarSpec(BaseModel):
    """A variable read from a file (its text, stripped), relative to the policy file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(min_length=1)


def _names(value: dict[str, Any]) -> dict[str, Any]:
    for name in value:
        if not NAME.match(name):
            raise ValueError(f"invalid name {name!r}: letters, digits, _ and -, not first digit")
    return value


Lists = Annotated[dict[str, ListSpec], AfterValidator(_names)]
Vars = Annotated[dict[str, VarSpec | str | int | float | bool | None], AfterValidator(_names)]


class PolicyDocument(BaseModel):
    """One policy file: either one set at the top level (``rules:`` ...) or ``sets:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    # Named lists and variables for every set of the file (and of its directory).
    lists: Lists = Field(default_factory=dict)
    vars: Vars = Field(default_factory=dict)
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
        top_level = self.model_fields_set & _SINGLE_SET_FIELDS
        if self.sets and top_level:
            raise ValueError(
                f"a file has either sets or one top-level set, not both (found sets and "
                f"{', '.join(sorted(top_level))})"
            )
        return self

    def policy_sets(self) -> tuple[PolicySet, ...]:
        if self.sets:
            return self.sets
        # Only what was written (``equals: null`` stays written; unset stays unset), by alias.
        fields = self.model_dump(include=set(_SINGLE_SET_FIELDS), exclude_unset=True, by_alias=True)
        return (PolicySet.model_validate(fields),)


class NamedList(BaseModel):
    """A list as loaded: its literal and file items, and whether the topic adds to them."""

    model_config = ConfigDict(frozen=True)

    items: tuple[Any, ...] = ()
    topic: bool = False


class PolicyBundle(BaseModel):
    """Every set loaded from one file or a directory; ``sources[i]`` names the file of
    ``sets[i]`` (for error messages). ``lists`` and ``vars`` are resolved (files read);
    ``files`` names the files they were read from (a reload watches them too)."""

    model_config = ConfigDict(frozen=True)

    sets: tuple[PolicySet, ...] = ()
    sources: tuple[str, ...] = ()
    lists: dict[str, NamedList] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    files: tuple[str, ...] = ()

    def source_of(self, index: int) -> str:
        return self.sources[index] if index < len(self.sources) else "policy"
