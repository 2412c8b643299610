"""Budgets: reserve before, settle after, never overshoot under concurrency."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from keel_contracts.errors import ResourceExhausted, Unavailable
from keel_core.resilience.breaker import CircuitBreaker
from keel_llm_gateway.domain.accounting import ModelPrice
from keel_llm_gateway.domain.budgets import (
    BudgetExceeded,
    BudgetLedger,
    BudgetLimits,
    Limit,
    ScopeKind,
    Spend,
)
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, Scope, Usage
from keel_llm_gateway.domain.routing import Router, Target
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import FakeProvider, text_completion
from keel_llm_gateway.usecases.fallback import ChainCaller
from keel_llm_gateway.usecases.gateway import Gateway, GatewayOptions
from keel_llm_gateway.usecases.observer import NullObserver

SCOPE = Scope(session_id="s1", agent_id="a1", tenant="acme")


def test_reserve_checks_every_scope_and_books_all_or_nothing() -> None:
    ledger = BudgetLedger(BudgetLimits(session=Limit(tokens=100), tenant=Limit(tokens=150)))
    ledger.reserve(SCOPE, Spend(60))
    other = Scope(session_id="s2", agent_id="a1", tenant="acme")
    ledger.reserve(other, Spend(60))
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve(other, Spend(40))  # s2 would be at 100: fine; acme at 160: not
    assert caught.value.kind is ScopeKind.TENANT
    assert isinstance(caught.value, ResourceExhausted)
    assert "tenant 'acme' token budget exceeded" in str(caught.value)
    assert ledger.used(ScopeKind.SESSION, "s2") == Spend(60)  # nothing booked on failure


def test_settle_replaces_the_estimate_and_release_returns_it() -> None:
    ledger = BudgetLedger(BudgetLimits(session=Limit(tokens=100, cost_usd=1.0)))
    held = ledger.reserve(SCOPE, Spend(80, 0.5))
    ledger.settle(held, Spend(30, 0.2))
    ledger.settle(held, Spend(30, 0.2))  # settling twice changes nothing
    assert ledger.spent(ScopeKind.SESSION, "s1") == Spend(30, 0.2)
    failed = ledger.reserve(SCOPE, Spend(70, 0.1))
    ledger.release(failed)
    assert ledger.used(ScopeKind.SESSION, "s1") == Spend(30, 0.2)
    with pytest.raises(BudgetExceeded, match="cost budget exceeded"):
        ledger.reserve(SCOPE, Spend(1, 0.9))


def test_per_tenant_overrides_and_unnamed_scopes() -> None:
    limits = BudgetLimits(tenant=Limit(tokens=10), tenants={"big": Limit(tokens=1000)})
    ledger = BudgetLedger(limits)
    ledger.reserve(Scope(tenant="big"), Spend(500))
    with pytest.raises(BudgetExceeded):
        ledger.reserve(Scope(tenant="small"), Spend(11))
    ledger.reserve(Scope(), Spend(10**9))  # nobody to charge


def test_idle_old_scopes_are_forgotten_past_the_bound() -> None:
    ledger = BudgetLedger(max_tracked=3)
    held = ledger.reserve(Scope(session_id="keep"), Spend(1))
    for index in range(5):
        ledger.settle(ledger.reserve(Scope(session_id=f"s{index}"), Spend(1)), Spend(1))
    assert ledger.used(ScopeKind.SESSION, "keep") == Spend(1)  # held: never evicted
    assert ledger.spent(ScopeKind.SESSION, "s0") == Spend()
    assert ledger.spent(ScopeKind.SESSION, "s4") == Spend(1)
    ledger.settle(held, Spend(1))


def gateway_with(
    provider: FakeProvider, limits: BudgetLimits, registry: CollectorRegistry
) -> Gateway:
    metrics = LLMMetrics(registry)
    breaker = CircuitBreaker(provider.name, failure_threshold=99, reset_timeout_s=1)
    return Gateway(
        router=Router.single(Target(provider=provider.name, model="m")),
        chain=ChainCaller({provider.name: provider}, {provider.name: breaker}, NullObserver()),
        prices={"m": ModelPrice(prompt=1.0, completion=1.0)},
        ledger=BudgetLedger(limits),
        observer=metrics,
        options=GatewayOptions(completion_reserve_tokens=90),
    )


def ask(scope: Scope = SCOPE) -> CompletionRequest:
    # 40 chars: 10 prompt tokens; + 90 reserved for the answer = 100 per request.
    return CompletionRequest(messages=(ChatMessage(role="user", content="q" * 40),), scope=scope)


async def test_concurrent_requests_do_not_overshoot_the_limit() -> None:
    answer = text_completion("a", usage=Usage(prompt_tokens=10, completion_tokens=90), model="m")
    provider = FakeProvider(replies=[answer], delay_s=0.05)
    registry = CollectorRegistry()
    gateway = gateway_with(provider, BudgetLimits(session=Limit(tokens=500)), registry)
    calls = (gateway.complete(ask()) for _ in range(12))
    results = await asyncio.gather(*calls, return_exceptions=True)
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BudgetExceeded)]
    assert (len(ok), len(refused)) == (5, 7)
    assert len(provider.requests) == 5  # refused requests never reached the provider
    assert gateway.ledger.spent(ScopeKind.SESSION, "s1") == Spend(500, 0.5)
    assert registry.get_sample_value("keel_llm_budget_rejections_total", {"scope": "session"}) == 7
    assert registry.get_sample_value("keel_llm_tenant_tokens_total", {"tenant": "acme"}) == 500


async def test_a_failed_call_gives_its_reservation_back() -> None:
    provider = FakeProvider(replies=[Unavailable("down"), "fine"])
    gateway = gateway_with(provider, BudgetLimits(session=Limit(tokens=100)), CollectorRegistry())
    with pytest.raises(Unavailable):
        await gateway.complete(ask())
    assert gateway.ledger.used(ScopeKind.SESSION, "s1") == Spend()
    await gateway.complete(ask())  # the whole budget is there again


async def test_cheap_actual_usage_frees_the_rest_of_the_reservation() -> None:
    answer = text_completion("a", usage=Usage(prompt_tokens=10, completion_tokens=5), model="m")
    gateway = gateway_with(
        FakeProvider(replies=[answer]), BudgetLimits(session=Limit(tokens=120)), CollectorRegistry()
    )
    await gateway.complete(ask())  # reserved 100, spent 15
    await gateway.complete(ask())  # 15 + 100 <= 120
    assert gateway.ledger.spent(ScopeKind.SESSION, "s1") == Spend(30, 0.03)
