"""A route depends only on the complexity and the model asked for: made once per pair."""

from __future__ import annotations

from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest
from keel_llm_gateway.domain.routing import MAX_ROUTES, Complexity, Router, Target

REQUEST = CompletionRequest(messages=(ChatMessage(role="user", content="q" * 40),))


def test_a_route_is_made_once_per_complexity_and_model() -> None:
    router = Router(
        dict.fromkeys(Complexity, (Target(provider="p", model="small"),)),
    )
    first = router.route(REQUEST.model_copy(update={"model": "big"}))
    again = router.route(REQUEST.model_copy(update={"model": "big", "temperature": 0.7}))
    assert again is first
    assert first.chain == (Target(provider="p", model="big"),)
    tiered = router.route(REQUEST)
    assert tiered.chain == (Target(provider="p", model="small"),)
    assert router.route(REQUEST) is tiered
    assert router.route(REQUEST.model_copy(update={"complexity": "high"})) is not tiered


def test_remembered_routes_are_bounded() -> None:
    router = Router(dict.fromkeys(Complexity, (Target(provider="p"),)))
    first = router.route(REQUEST.model_copy(update={"model": "m0"}))
    for index in range(1, MAX_ROUTES + 1):
        router.route(REQUEST.model_copy(update={"model": f"m{index}"}))
    again = router.route(REQUEST.model_copy(update={"model": "m0"}))
    assert again == first
    assert again is not first  # forgotten once the bound was passed, made again alike
