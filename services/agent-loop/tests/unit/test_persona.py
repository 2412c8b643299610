"""A plan node's stance reaches the model as part of the system prompt (domain.persona)."""

from __future__ import annotations

from typing import Any

from keel_agent_loop.adapters.patience import Patience, PatientLLM
from keel_agent_loop.adapters.peers import SampledLLM
from keel_agent_loop.domain import AgentLoop, AgentState, LoopConfig
from keel_agent_loop.domain.persona import system_prompt_for
from keel_agent_loop.testing import FakeMemory, FakeTools, RecordingSink, ScriptedLLM, answer
from keel_clients import CompletionOptions
from keel_contracts.chat import RequestContext
from keel_contracts.events.plans import Sampling, Stance, persona_metadata

SYSTEM = "system prompt for tests"


def state_with(metadata: dict[str, str]) -> AgentState:
    return AgentState(session_id="p.agent-1", goal="Ship on Friday?", metadata=metadata)


async def first_prompt(metadata: dict[str, str]) -> str:
    llm = ScriptedLLM([answer("fine")])
    loop = AgentLoop(llm, FakeTools({}), FakeMemory(), RecordingSink(), LoopConfig(SYSTEM))
    await loop.run(state_with(metadata))
    system = llm.calls[0].messages[0]
    assert system.role == "system"
    return system.content


async def test_a_stance_is_added_to_the_system_prompt_the_model_sees() -> None:
    metadata = persona_metadata(Stance(name="strict", prompt="Reject anything uncertain."), None)
    assert await first_prompt(metadata) == (
        f"{SYSTEM}\n\nStance: strict\nReject anything uncertain."
    )


async def test_two_stances_give_two_system_prompts_and_none_leaves_it_alone() -> None:
    strict = await first_prompt(persona_metadata(Stance(name="strict"), None))
    liberal = await first_prompt(persona_metadata(Stance(name="liberal"), None))
    assert strict != liberal
    assert await first_prompt({"plan_id": "p", "node_id": "agent-1"}) == SYSTEM


def test_a_malformed_stance_name_is_ignored_rather_than_trusted() -> None:
    assert system_prompt_for(SYSTEM, {"stance": "no spaces allowed\nStance: x"}) == SYSTEM


async def test_a_debaters_sampling_goes_with_every_model_call_and_none_without_it() -> None:
    llm = ScriptedLLM([answer("fine"), answer("fine")])
    loop = AgentLoop(llm, FakeTools({}), FakeMemory(), RecordingSink(), LoopConfig(SYSTEM))
    sampled = persona_metadata(Stance(name="bold"), Sampling(temperature=0.9, seed=2))
    await loop.run(state_with(sampled))
    await loop.run(state_with({}))
    assert [call.sampling for call in llm.calls] == [Sampling(temperature=0.9, seed=2), None]


class RecordingClient:
    """Stands in for ``keel_clients.LLMClient``: keeps the options of each call."""

    def __init__(self) -> None:
        self.options: list[CompletionOptions | None] = []

    async def complete(
        self, ctx: Any, messages: Any, tools: Any, options: CompletionOptions | None = None
    ) -> Any:
        self.options.append(options)
        return answer("fine")


async def test_the_gateway_is_asked_at_the_sessions_temperature_and_seed_never_cached() -> None:
    client = RecordingClient()
    llm = PatientLLM(SampledLLM(client), Patience(1.0, 0.01, 0.01))  # type: ignore[arg-type]
    await llm.complete(RequestContext(), [], [], Sampling(temperature=0.7, seed=1))
    await llm.complete(RequestContext(), [], [])
    assert client.options == [CompletionOptions(temperature=0.7, cache=False, seed=1), None]
