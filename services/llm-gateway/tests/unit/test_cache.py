"""Cache keys (canonical), TTL with an injected clock, LRU bound, and the gateway's use."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from keel_core.testing import FakeClock
from keel_llm_gateway.domain.accounting import ModelPrice
from keel_llm_gateway.domain.cache import ResponseCache, cache_key, cacheable
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, Scope, ToolSpec, Usage
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import FakeProvider, text_completion
from keel_llm_gateway.usecases.gateway import Gateway

USER = ChatMessage(role="user", content="What is 2 + 2?")


def request(**fields: object) -> CompletionRequest:
    base: dict[str, object] = {"messages": (USER,)}
    return CompletionRequest(**{**base, **fields})  # type: ignore[arg-type]


def tool(properties: dict[str, object]) -> ToolSpec:
    return ToolSpec(name="calc", parameters={"type": "object", "properties": properties})


def test_key_ignores_dict_key_order_but_not_content() -> None:
    a = request(tools=(tool({"x": {"type": "string"}, "y": {"type": "integer"}}),))
    b = request(tools=(tool({"y": {"type": "integer"}, "x": {"type": "string"}}),))
    c = request(tools=(tool({"x": {"type": "string"}}),))
    assert cache_key(a, "m") == cache_key(b, "m")
    assert cache_key(a, "m") != cache_key(c, "m")


def test_key_covers_model_messages_sampling_and_tenant_but_not_the_session() -> None:
    base = cache_key(request(), "m")
    assert cache_key(request(), "other") != base
    assert cache_key(request(messages=(USER, USER)), "m") != base
    assert cache_key(request(max_tokens=10), "m") != base
    assert cache_key(request(temperature=0.5, cache=True), "m") != base
    assert cache_key(request(scope=Scope(session_id="s", agent_id="a")), "m") == base
    assert cache_key(request(scope=Scope(session_id="s", tenant="default")), "m") == base
    assert cache_key(request(scope=Scope(tenant="t")), "m") != base
    assert len(base) == 64


def test_only_temperature_zero_unless_opted_in() -> None:
    assert cacheable(request())
    assert not cacheable(request(temperature=0.7))
    assert cacheable(request(temperature=0.7, cache=True))


def test_entries_expire_after_ttl() -> None:
    clock = FakeClock(100.0)
    cache = ResponseCache(max_entries=10, ttl_s=60, clock=clock)
    cache.put("k", text_completion("hi", usage=Usage(prompt_tokens=5, completion_tokens=1)))
    clock.advance(59.9)
    hit = cache.get("k")
    assert hit is not None
    assert hit.cached
    assert hit.usage == Usage(prompt_tokens=5, completion_tokens=1, cost_usd=0.0)
    clock.advance(0.1)
    assert cache.get("k") is None
    assert len(cache) == 0


def test_least_recently_used_goes_first() -> None:
    cache = ResponseCache(max_entries=2, ttl_s=60, clock=FakeClock(100.0))
    cache.put("a", text_completion("a"))
    cache.put("b", text_completion("b"))
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", text_completion("c"))
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None


async def test_gateway_serves_hits_free_and_counts_hit_miss_bypass() -> None:
    provider = FakeProvider(
        replies=[text_completion("4", usage=Usage(prompt_tokens=10, completion_tokens=1))]
    )
    registry = CollectorRegistry()
    gateway = Gateway.single(
        provider,
        {"fake-model": ModelPrice(prompt=1.0)},
        cache=ResponseCache(max_entries=8, ttl_s=60),
        observer=LLMMetrics(registry),
    )
    first = await gateway.complete(request())
    second = await gateway.complete(request())
    sampled = await gateway.complete(request(temperature=0.9))
    assert (first.cached, second.cached, sampled.cached) == (False, True, False)
    assert first.usage is not None
    assert first.usage.cost_usd > 0
    assert second.usage is not None
    assert second.usage.cost_usd == 0
    assert second.message == first.message
    assert len(provider.requests) == 2

    def count(result: str) -> float | None:
        return registry.get_sample_value("keel_llm_cache_requests_total", {"result": result})

    assert (count("hit"), count("miss"), count("bypass")) == (1, 1, 1)


async def test_a_cache_hit_never_crosses_tenants() -> None:
    """Tenant B asking tenant A's question verbatim gets its own answer from the provider,
    never A's cached one (which may carry A's data); A's repeat still hits."""
    provider = FakeProvider(replies=["A's secret answer", "B's answer"])
    gateway = Gateway.single(provider, {}, cache=ResponseCache(max_entries=8, ttl_s=60))
    tenant_a = request(scope=Scope(session_id="s1", tenant="a"))
    tenant_b = request(scope=Scope(session_id="s2", tenant="b"))
    first = await gateway.complete(tenant_a)
    other = await gateway.complete(tenant_b)
    again = await gateway.complete(tenant_a)
    assert (first.cached, other.cached, again.cached) == (False, False, True)
    assert other.message.content == "B's answer"
    assert again.message.content == "A's secret answer"
    assert len(provider.requests) == 2


async def test_a_cache_hit_streams_the_cached_answer() -> None:
    provider = FakeProvider(replies=["two plus two is four"])
    gateway = Gateway.single(provider, {}, cache=ResponseCache(max_entries=8, ttl_s=60))
    await gateway.complete(request())
    events = [event async for event in gateway.stream(request())]
    *deltas, final = events
    assert "".join(d.content for d in deltas) == "two plus two is four"  # type: ignore[union-attr]
    assert final.cached  # type: ignore[union-attr]
    assert len(provider.requests) == 1


def test_key_is_the_hash_of_one_canonical_json_document() -> None:
    import json

    from keel_contracts.canonical import canonical_json, sha256_hex
    from keel_llm_gateway.domain.models import ToolCall

    call = ToolCall(id="c1", name="calc", arguments_json='{"x": "ü"}')
    req = request(
        messages=(USER, ChatMessage(role="assistant", tool_calls=(call,))),
        tools=(tool({"x": {"type": "string"}}), ToolSpec(name="clock", description="é")),
        max_tokens=64,
    )
    text = canonical_json(
        {
            "max_tokens": 64,
            "messages": [
                ["user", "What is 2 + 2?", [], "", ""],
                ["assistant", "", [["c1", "calc", '{"x": "ü"}']], "", ""],
            ],
            "model": "m",
            "seed": None,
            "temperature": 0.0,
            "tenant": "default",
            "tools": [t.model_dump(mode="json") for t in req.tools],
        }
    )
    json.loads(text)
    assert cache_key(req, "m") == sha256_hex(text)
