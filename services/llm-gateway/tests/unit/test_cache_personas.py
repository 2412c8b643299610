"""The response cache cannot collapse a debate: each stance (in the system message) and each
temperature is a key of its own, and a sampled call is not cached unless it opts in."""

from __future__ import annotations

from keel_llm_gateway.domain.cache import cache_key, cacheable
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest

QUESTION = ChatMessage(role="user", content="Should we ship on Friday?")


def debater(stance: str, temperature: float = 0.0) -> CompletionRequest:
    system = ChatMessage(role="system", content=f"You are an agent.\n\nStance: {stance}\nArgue.")
    return CompletionRequest(messages=(system, QUESTION), temperature=temperature)


def test_each_stance_is_its_own_key_and_the_same_stance_shares_one() -> None:
    keys = {cache_key(debater(s), "scripted") for s in ("strict", "liberal", "risk-focused")}
    assert len(keys) == 3
    assert cache_key(debater("strict"), "scripted") == cache_key(debater("strict"), "scripted")


def test_a_sampled_debater_is_not_cached_and_its_temperature_is_in_the_key() -> None:
    assert cacheable(debater("strict"))
    assert not cacheable(debater("strict", 0.7))
    assert cache_key(debater("strict", 0.7), "m") != cache_key(debater("strict", 0.2), "m")
