"""What a call does not do: models that do not change are reused rather than copied, and
budgets with no limit to enforce book nothing (each would be per-call work for no decision)."""

from __future__ import annotations

from keel_core.resilience.breaker import CircuitBreaker
from keel_llm_gateway.domain.accounting import ModelPrice, account
from keel_llm_gateway.domain.budgets import (
    BudgetLedger,
    BudgetLimits,
    Limit,
    LocalBudgets,
    ScopeKind,
    Spend,
)
from keel_llm_gateway.domain.cache import as_hit
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, Scope, Usage
from keel_llm_gateway.domain.routing import Target
from keel_llm_gateway.testing import FakeProvider, text_completion
from keel_llm_gateway.usecases.fallback import ChainCaller
from keel_llm_gateway.usecases.gateway import Gateway
from keel_llm_gateway.usecases.observer import NullObserver

SCOPE = Scope(session_id="s1", agent_id="a1", tenant="acme")
REQUEST = CompletionRequest(messages=(ChatMessage(role="user", content="q" * 40),), scope=SCOPE)


async def test_without_limits_the_gateway_books_nothing() -> None:
    budgets = LocalBudgets(BudgetLedger())
    reservation = await budgets.reserve(SCOPE, Spend(60, 0.5))
    assert reservation.keys == ()
    assert budgets.ledger.used(ScopeKind.SESSION, "s1") == Spend()
    await budgets.settle(reservation, Spend(30, 0.2))
    assert budgets.ledger.spent(ScopeKind.TENANT, "acme") == Spend()
    assert not reservation.open
    gateway = Gateway.single(FakeProvider(replies=["a"]), {})
    await gateway.complete(REQUEST)
    assert gateway.ledger.spent(ScopeKind.SESSION, "s1") == Spend()


async def test_with_any_limit_every_scope_is_still_booked() -> None:
    budgets = LocalBudgets(BudgetLedger(BudgetLimits(tenants={"other": Limit(tokens=10)})))
    reservation = await budgets.reserve(SCOPE, Spend(60))
    assert reservation.keys == (
        (ScopeKind.SESSION, "s1"),
        (ScopeKind.AGENT, "a1"),
        (ScopeKind.TENANT, "acme"),
    )
    await budgets.settle(reservation, Spend(30))
    assert budgets.ledger.spent(ScopeKind.AGENT, "a1") == Spend(30)


def test_accounting_an_already_priced_completion_returns_it_as_it_is() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=5)
    completion = text_completion("a", usage=usage, model="free")
    assert account(REQUEST, completion, {}) is completion
    priced = account(REQUEST, completion, {"free": ModelPrice(prompt=1.0)})
    assert priced.usage == usage.model_copy(update={"cost_usd": 0.01})


def test_a_free_answer_keeps_its_usage_as_a_hit() -> None:
    completion = text_completion("a", usage=Usage(prompt_tokens=3, completion_tokens=4))
    hit = as_hit(completion)
    assert hit.cached
    assert hit.usage is completion.usage
    paid = completion.model_copy(
        update={"usage": Usage(prompt_tokens=3, completion_tokens=4, cost_usd=2.0)}
    )
    assert as_hit(paid).usage == Usage(prompt_tokens=3, completion_tokens=4, cost_usd=0.0)


async def test_a_request_naming_the_targets_model_reaches_the_provider_as_it_is() -> None:
    provider = FakeProvider(replies=["a", "b"])
    gateway = Gateway.single(provider, {})
    await gateway.complete(REQUEST)  # the single target serves the provider's default model ""
    assert provider.requests[0] is REQUEST
    breaker = CircuitBreaker(provider.name, failure_threshold=9, reset_timeout_s=1.0)
    chain = ChainCaller({provider.name: provider}, {provider.name: breaker}, NullObserver())
    await chain.complete([Target(provider=provider.name, model="other")], REQUEST)
    assert provider.requests[1].model == "other"
    assert provider.requests[1] == REQUEST.model_copy(update={"model": "other"})
