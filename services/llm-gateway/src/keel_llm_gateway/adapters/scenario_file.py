"""Scenario files for the scripted provider: validated on load, so a broken script fails at
start-up with the file and line, not in the middle of a demo."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from keel_core.yamlfile import load_yaml_model
from keel_llm_gateway.adapters.templating import placeholders, strings_in
from keel_llm_gateway.errors import ScenarioFileError

BUILTIN_PLACEHOLDERS = frozenset({"goal", "last_tool_result", "stance"})


class ScriptedToolCall(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class Step(BaseModel):
    """One assistant turn: tool calls, text, or both. ``times`` repeats it (0 skips it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tool_calls: tuple[ScriptedToolCall, ...] = ()
    content: str = ""
    # A whole number, or a template that renders to one ("{1}").
    times: int | str = 1

    @field_validator("times")
    @classmethod
    def _times(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("times must be >= 0")
        literal = isinstance(value, str) and not placeholders(value)
        if literal and not re.fullmatch(r"\s*[0-9]+\s*", str(value)):
            raise ValueError(f"times {value!r} is neither a whole number nor a template")
        return value

    @model_validator(mode="after")
    def _says_something(self) -> Step:
        if not self.tool_calls and not self.content:
            raise ValueError("a step needs tool_calls or content")
        return self

    def templates(self) -> list[str]:
        found = [self.content, *(s for c in self.tool_calls for s in strings_in(c.arguments))]
        return [*found, self.times] if isinstance(self.times, str) else found


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    # Searched (re.search) in the first user message of the request.
    match: str = Field(min_length=1)
    # Searched (re.search) in the request's stance (a ``Stance: <name>`` line of the system
    # message, as the agent loop writes a plan node's persona); set, the scenario is only for
    # requests with a matching stance, so one script answers each debater in its own voice.
    stance: str | None = None
    steps: tuple[Step, ...] = Field(min_length=1)

    @field_validator("match", "stance")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _known_placeholders(self) -> Scenario:
        pattern = re.compile(self.match)
        known = BUILTIN_PLACEHOLDERS | set(pattern.groupindex)
        known |= {str(i) for i in range(pattern.groups + 1)}
        for index, step in enumerate(self.steps):
            for template in step.templates():
                unknown = placeholders(template) - known
                if unknown:
                    names = ", ".join(sorted(unknown))
                    raise ValueError(f"step {index}: unknown placeholder(s) {names}")
        return self

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.match)


class ScenarioFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    scenarios: tuple[Scenario, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> ScenarioFile:
        names = [s.name for s in self.scenarios]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate scenario name(s): {', '.join(duplicates)}")
        return self


def load_scenarios(path: Path) -> ScenarioFile:
    return load_yaml_model(path, ScenarioFile, ScenarioFileError, "scenario file")
