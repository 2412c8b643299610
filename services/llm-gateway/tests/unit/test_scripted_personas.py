"""The scripted model answers per persona: the ``Stance: <name>`` line the agent loop writes
into a plan node's system prompt picks the scenario and fills ``{stance}``."""

from __future__ import annotations

from typing import Any

import pytest

from keel_llm_gateway.adapters.scenario_file import ScenarioFile, load_scenarios
from keel_llm_gateway.adapters.scripted import ScriptedProvider
from keel_llm_gateway.config import DEMO_SCENARIOS
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest
from keel_llm_gateway.errors import ScenarioFileError


def request(goal: str, stance: str = "") -> CompletionRequest:
    system = "You are a test agent." + (f"\n\nStance: {stance}\nArgue it." if stance else "")
    return CompletionRequest(
        messages=(
            ChatMessage(role="system", content=system),
            ChatMessage(role="user", content=goal),
        )
    )


def script(*scenarios: dict[str, Any]) -> ScriptedProvider:
    return ScriptedProvider(ScenarioFile.model_validate({"scenarios": list(scenarios)}))


async def answer(provider: ScriptedProvider, goal: str, stance: str = "") -> str:
    return (await provider.complete(request(goal, stance))).message.content


async def test_a_stance_scenario_answers_only_its_stance() -> None:
    provider = script(
        {"name": "bold", "match": "go", "stance": "^bold$", "steps": [{"content": "Go now."}]},
        {"name": "any", "match": "go", "steps": [{"content": "Go? ({stance})"}]},
    )
    assert await answer(provider, "go", "bold") == "Go now."
    assert await answer(provider, "go", "timid") == "Go? (timid)"
    assert await answer(provider, "go") == "Go? ()"


async def test_the_demo_debate_gives_each_default_stance_its_own_answer() -> None:
    provider = ScriptedProvider.from_file(DEMO_SCENARIOS)
    question = "Should we ship on Friday?"
    answers = {
        stance: await answer(provider, question, stance)
        for stance in ("strict", "liberal", "risk-focused", "pragmatic")
    }
    assert len(set(answers.values())) == 4
    assert answers["strict"].startswith("No: we should not ship on Friday")
    assert answers["pragmatic"].startswith("Speaking as pragmatic:")
    assert await answer(provider, question) == "It depends on whether we can ship on Friday safely."


def test_a_bad_stance_regex_fails_on_load(tmp_path: Any) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("scenarios:\n  - {name: x, match: a, stance: '(', steps: [{content: y}]}\n")
    with pytest.raises(ScenarioFileError, match="invalid regex"):
        load_scenarios(bad)
