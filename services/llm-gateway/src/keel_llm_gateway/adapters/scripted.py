"""The scripted provider: deterministic answers from a scenario file, for demos, tests and
benchmarks without a model.

It is stateless on purpose. The goal (first user message) picks the scenario, and the number of
assistant messages already in the request picks the step, so a session that is replayed or
resumed from a checkpoint on another replica gets exactly the same answer. A persona counts too:
the stance a plan node gives its session (a ``Stance: <name>`` line in the system message) is
the ``{stance}`` placeholder and can pick a scenario of its own (``stance:`` in the file), so the
debaters of ``keel plan debate`` answer as different voices.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from keel_contracts.errors import FailedPrecondition
from keel_contracts.untrusted import strip_untrusted
from keel_llm_gateway.adapters.scenario_file import Scenario, ScenarioFile, Step, load_scenarios
from keel_llm_gateway.adapters.templating import render, render_value
from keel_llm_gateway.domain.models import (
    ChatMessage,
    Completion,
    CompletionRequest,
    StreamEvent,
    ToolCall,
)
from keel_llm_gateway.domain.streaming import stream_by_completing

MODEL = "scripted"
_WHOLE = re.compile(r"[0-9]+")
# How the agent loop writes a session's stance into its system prompt (domain/persona.py).
_STANCE = re.compile(r"(?m)^Stance: ([A-Za-z0-9_-]{1,40})\s*$")


class ScriptedProvider:
    name = "scripted"

    def __init__(self, script: ScenarioFile) -> None:
        self._scenarios = [
            (scenario, scenario.pattern, re.compile(scenario.stance) if scenario.stance else None)
            for scenario in script.scenarios
        ]

    @classmethod
    def from_file(cls, path: Path) -> ScriptedProvider:
        return cls(load_scenarios(path))

    async def aclose(self) -> None:
        """Nothing to release: the script is read once at start-up."""

    async def complete(self, request: CompletionRequest) -> Completion:
        goal = _first(request, "user")
        turn = sum(1 for m in request.messages if m.role == "assistant")
        stance = _stance(_first(request, "system"))
        found = self._match(goal, stance)
        if found is None:
            return _answer(f"No scripted scenario matches the goal: {goal!r}")
        scenario, match = found
        # The agent loop marks tool output as untrusted data; a script wants the value itself.
        values = _values(goal, match, strip_untrusted(_last(request, "tool")))
        values["stance"] = stance
        step = _step_at(scenario, turn, values)
        if step is None:
            return _answer(f"Scripted scenario {scenario.name!r} has no step {turn + 1}.")
        calls = tuple(
            ToolCall(
                id=f"call_{turn}_{index}",
                name=call.name,
                arguments_json=json.dumps(render_value(call.arguments, values)),
            )
            for index, call in enumerate(step.tool_calls)
        )
        message = ChatMessage(
            role="assistant", content=render(step.content, values), tool_calls=calls
        )
        return Completion(
            message=message,
            model=MODEL,
            provider=self.name,
            finish_reason="tool_calls" if calls else "stop",
        )

    async def stream(self, request: CompletionRequest) -> AsyncIterator[StreamEvent]:
        """The scripted answer's text in a few chunks, then the answer."""
        async for event in stream_by_completing(self.complete, request):
            yield event

    def _match(self, goal: str, stance: str) -> tuple[Scenario, re.Match[str]] | None:
        for scenario, pattern, stance_pattern in self._scenarios:
            if stance_pattern is not None and not (stance and stance_pattern.search(stance)):
                continue
            match = pattern.search(goal)
            if match:
                return scenario, match
        return None


def _first(request: CompletionRequest, role: str) -> str:
    return next((m.content for m in request.messages if m.role == role), "")


def _stance(system: str) -> str:
    found = _STANCE.search(system)
    return found.group(1) if found else ""


def _last(request: CompletionRequest, role: str) -> str:
    return next((m.content for m in reversed(request.messages) if m.role == role), "")


def _values(goal: str, match: re.Match[str], last_tool_result: str) -> dict[str, str]:
    groups = {str(i): match.group(i) or "" for i in range(match.re.groups + 1)}
    named = {name: value or "" for name, value in match.groupdict().items()}
    return {**groups, **named, "goal": goal, "last_tool_result": last_tool_result}


def _step_at(scenario: Scenario, turn: int, values: Mapping[str, str]) -> Step | None:
    """The step for the ``turn``-th assistant message, counting repetitions."""
    remaining = turn
    for step in scenario.steps:
        count = _times(scenario, step, values)
        if remaining < count:
            return step
        remaining -= count
    return None


def _times(scenario: Scenario, step: Step, values: Mapping[str, str]) -> int:
    if isinstance(step.times, int):
        return step.times
    rendered = render(step.times, values).strip()
    if not _WHOLE.fullmatch(rendered):
        raise FailedPrecondition(
            f"scripted scenario {scenario.name!r}: times {step.times!r} rendered to "
            f"{rendered!r}, not a whole number"
        )
    return int(rendered)


def _answer(text: str) -> Completion:
    return Completion(
        message=ChatMessage(role="assistant", content=text),
        model=MODEL,
        provider=ScriptedProvider.name,
        finish_reason="stop",
    )
