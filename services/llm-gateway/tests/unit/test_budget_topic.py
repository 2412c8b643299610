"""TopicBudgets: reservations answered from the shared fold, settlements and releases
recorded for every replica (and every later start)."""

from __future__ import annotations

import pytest

from keel_contracts.errors import Unavailable
from keel_contracts.events import BudgetSettled
from keel_contracts.topics import LLM_BUDGET
from keel_core.testing import BusPublisher, FakeClock, FlakyPublisher, InMemoryBus, InMemoryFollower
from keel_llm_gateway.adapters.budget_topic import TopicBudgets
from keel_llm_gateway.domain.budget_fold import BudgetFold
from keel_llm_gateway.domain.budgets import BudgetExceeded, BudgetLimits, Limit, ScopeKind, Spend
from keel_llm_gateway.domain.models import Scope

LIMITS = BudgetLimits(tenant=Limit(tokens=100))
SCOPE = Scope(session_id="s1", agent_id="a1", tenant="acme")


async def replica(bus: InMemoryBus, clock: FakeClock, publisher: object = None) -> TopicBudgets:
    budgets = TopicBudgets(
        BudgetFold(LIMITS, hold_ttl_s=60),
        InMemoryFollower(bus, LLM_BUDGET),
        publisher or BusPublisher(bus),  # type: ignore[arg-type]
        "llm-gateway",
        clock,
    )
    await budgets.start()
    return budgets


async def test_settle_and_release_are_folded_by_a_replica_started_later() -> None:
    bus, clock = InMemoryBus(), FakeClock()
    first = await replica(bus, clock)
    kept = await first.reserve(SCOPE, Spend(60))
    dropped = await first.reserve(SCOPE, Spend(40))
    with pytest.raises(BudgetExceeded):
        await first.reserve(SCOPE, Spend(1))
    await first.settle(kept, Spend(50))
    first.release(dropped)
    await first.stop()  # releases in flight land
    later = await replica(bus, clock)
    assert later.fold.used("acme", ScopeKind.TENANT, "acme") == Spend(50)
    assert later.fold.held("acme") == 0
    assert await later.reserve(SCOPE, Spend(50))


async def test_a_settlement_the_broker_refuses_still_answers_and_the_hold_stays() -> None:
    bus, clock = InMemoryBus(), FakeClock()
    flaky = FlakyPublisher(BusPublisher(bus))
    budgets = await replica(bus, clock, flaky)
    held = await budgets.reserve(SCOPE, Spend(70))
    flaky.fail_next(1)
    await budgets.settle(held, Spend(10))  # logged, not raised: the model already answered
    assert budgets.fold.used("acme", ScopeKind.TENANT, "acme") == Spend(70)
    clock.advance(61)  # the hold's TTL, by the next record's time
    assert await budgets.reserve(SCOPE, Spend(100))


async def test_a_reservation_that_got_no_verdict_is_released_for_every_replica() -> None:
    bus, clock = InMemoryBus(), FakeClock()
    flaky = FlakyPublisher(BusPublisher(bus))
    budgets = await replica(bus, clock, flaky)
    flaky.fail_next(1)
    with pytest.raises(Unavailable):
        await budgets.reserve(SCOPE, Spend(10))
    await budgets.stop()
    released = [e.parse(BudgetSettled) for e in bus.envelopes(LLM_BUDGET)]
    assert [r.released for r in released] == [True]
