"""The guards file (``KEEL_AGENT_LOOP_GUARDS_FILE``), as people write it: guard rules on final
answers and tool arguments, and the escalation signals that park a session for a person.

```yaml
version: 1
rules:
  - id: no-api-keys
    match: answer              # "answer", or a glob of tool names ("send_*", "*")
    regex: 'sk-[A-Za-z0-9]{20,}'
    verdict: redact            # pass | redact | block | require_approval
    reason: looks like an API key
escalation:
  hedging: ["i am not sure", "i'm not sure"]
  confidence: {field: confidence, below: 0.5}
  tool_errors: 3
  budget_percent: 90
  out_of_profile: 2
```
"""

from __future__ import annotations

import re
from typing import Any, Literal

import jsonschema
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ANSWER = "answer"


class GuardRule(BaseModel):
    """One rule: where it applies, what it checks (any check that trips makes it match) and
    what happens then."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    match: str = Field(min_length=1)
    regex: str | None = None
    deny_terms: tuple[str, ...] = ()
    max_length: int | None = Field(default=None, ge=1)
    json_schema: dict[str, Any] | None = None
    verdict: Literal["pass", "redact", "block", "require_approval"]
    reason: str = ""

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @field_validator("json_schema")
    @classmethod
    def _schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            try:
                jsonschema.Draft202012Validator.check_schema(value)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"not a valid JSON Schema: {exc.message}") from exc
        return value

    @model_validator(mode="after")
    def _checks(self) -> GuardRule:
        if not (self.regex or self.deny_terms or self.max_length or self.json_schema):
            raise ValueError("a rule needs a check: regex, deny_terms, max_length or json_schema")
        if self.verdict == "redact" and (self.max_length or self.json_schema):
            raise ValueError("redact replaces matched spans: use it with regex or deny_terms only")
        if any(not term.strip() for term in self.deny_terms):
            raise ValueError("deny_terms may not hold an empty term")
        return self

    @property
    def on_answer(self) -> bool:
        return self.match == ANSWER


class ConfidenceRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(default="confidence", min_length=1)
    below: float = Field(ge=0, le=1)


class EscalationRules(BaseModel):
    """Low-confidence signals; each one left out is off."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hedging: tuple[str, ...] = ()
    confidence: ConfidenceRule | None = None
    tool_errors: int | None = Field(default=None, ge=1)
    budget_percent: float | None = Field(default=None, gt=0, le=100)
    out_of_profile: int | None = Field(default=None, ge=1)

    @field_validator("hedging")
    @classmethod
    def _phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not phrase.strip() for phrase in value):
            raise ValueError("hedging may not hold an empty phrase")
        return tuple(phrase.lower() for phrase in value)


class GuardsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    rules: tuple[GuardRule, ...] = ()
    escalation: EscalationRules = EscalationRules()

    @model_validator(mode="after")
    def _unique(self) -> GuardsDocument:
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} is used twice")
            seen.add(rule.id)
        return self
