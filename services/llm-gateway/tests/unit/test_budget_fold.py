"""The shared budget fold: a pure function of the log, so every replica agrees on every
verdict (ADR 0015)."""

from __future__ import annotations

from keel_llm_gateway.domain.budget_fold import BudgetFold
from keel_llm_gateway.domain.budgets import BudgetExceeded, BudgetLimits, Limit, ScopeKind, Spend

S1 = ((ScopeKind.SESSION, "s1"), (ScopeKind.TENANT, "acme"))
S2 = ((ScopeKind.SESSION, "s2"), (ScopeKind.TENANT, "acme"))
TENANT = BudgetLimits(tenant=Limit(tokens=300))


def test_a_reservation_is_accepted_while_it_fits_and_refused_after() -> None:
    fold = BudgetFold(TENANT, hold_ttl_s=60)
    assert [fold.reserve(f"r{i}", "acme", S1, Spend(100), at=1.0) for i in range(3)] == [None] * 3
    refused = fold.reserve("r3", "acme", S2, Spend(1), at=1.0)
    assert isinstance(refused, BudgetExceeded)
    assert "tenant 'acme' token budget exceeded" in str(refused)
    assert fold.used("acme", ScopeKind.SESSION, "s2") == Spend()  # nothing held when refused
    assert fold.held("acme") == 3


def test_every_scope_is_checked_and_a_refusal_books_on_none() -> None:
    fold = BudgetFold(BudgetLimits(session=Limit(tokens=100), tenant=Limit(tokens=150)), 60)
    assert fold.reserve("a", "acme", S1, Spend(60), at=1.0) is None
    assert fold.reserve("b", "acme", S2, Spend(60), at=1.0) is None
    refused = fold.reserve("c", "acme", S2, Spend(40), at=1.0)  # s2 fits; acme would not
    assert isinstance(refused, BudgetExceeded)
    assert refused.kind is ScopeKind.TENANT
    assert fold.used("acme", ScopeKind.SESSION, "s2") == Spend(60)
    session = fold.reserve("d", "acme", S1, Spend(41), at=1.0)  # s1 at 101 > 100
    assert isinstance(session, BudgetExceeded)
    assert session.kind is ScopeKind.SESSION


def test_settle_replaces_the_hold_with_the_real_cost_and_release_frees_it() -> None:
    fold = BudgetFold(BudgetLimits(tenant=Limit(tokens=100, cost_usd=1.0)), 60)
    fold.reserve("a", "acme", S1, Spend(80, 0.5), at=1.0)
    fold.settle("a", "acme", Spend(30, 0.2), at=2.0)
    fold.settle("a", "acme", Spend(30, 0.2), at=2.0)  # a repeated settlement changes nothing
    assert fold.spent("acme", ScopeKind.TENANT, "acme") == Spend(30, 0.2)
    fold.reserve("b", "acme", S1, Spend(70, 0.1), at=3.0)
    fold.release("b", "acme", at=4.0)
    assert fold.used("acme", ScopeKind.TENANT, "acme") == Spend(30, 0.2)
    assert fold.held("acme") == 0
    assert isinstance(fold.reserve("c", "acme", S1, Spend(1, 0.9), at=5.0), BudgetExceeded)


def test_settling_a_refused_or_unknown_reservation_changes_nothing() -> None:
    fold = BudgetFold(TENANT, 60)
    assert fold.reserve("big", "acme", S1, Spend(301), at=1.0) is not None
    fold.settle("big", "acme", Spend(301), at=2.0)
    fold.settle("never-reserved", "acme", Spend(5), at=2.0)
    assert fold.used("acme", ScopeKind.TENANT, "acme") == Spend()


def test_a_hold_never_settled_expires_by_the_records_clock_and_a_late_settle_still_counts() -> None:
    fold = BudgetFold(TENANT, hold_ttl_s=60)
    fold.reserve("dead", "acme", S1, Spend(300), at=100.0)  # its replica dies
    assert isinstance(fold.reserve("x", "acme", S2, Spend(1), at=159.0), BudgetExceeded)
    assert fold.reserve("y", "acme", S2, Spend(100), at=160.0) is None  # 100 + 60: expired
    assert fold.held("acme") == 1
    fold.settle("dead", "acme", Spend(150), at=170.0)  # it did finish after all
    assert fold.spent("acme", ScopeKind.TENANT, "acme") == Spend(150)
    assert fold.used("acme", ScopeKind.TENANT, "acme") == Spend(250)


def test_the_clock_is_per_tenant_and_never_goes_back() -> None:
    fold = BudgetFold(TENANT, hold_ttl_s=60)
    fold.reserve("a", "acme", S1, Spend(300), at=100.0)
    # Another tenant's records (another partition, folded in any order) expire nothing here.
    fold.reserve("b", "other", ((ScopeKind.TENANT, "other"),), Spend(1), at=1000.0)
    assert fold.held("acme") == 1
    # A writer whose clock is behind does not move the tenant's clock back.
    fold.reserve("c", "acme", S2, Spend(0), at=150.0)
    fold.reserve("d", "acme", S2, Spend(0), at=10.0)
    assert fold.held("acme") == 3


def test_accounts_are_per_tenant() -> None:
    fold = BudgetFold(BudgetLimits(session=Limit(tokens=100)), 60)
    assert fold.reserve("a", "acme", S1, Spend(100), at=1.0) is None
    other = ((ScopeKind.SESSION, "s1"), (ScopeKind.TENANT, "beta"))
    assert fold.reserve("b", "beta", other, Spend(100), at=1.0) is None


def test_the_same_log_gives_the_same_verdicts_in_any_fold() -> None:
    """What makes the shared ledger exact: two replicas folding one log agree on every
    record, whatever they folded of other tenants in between."""
    log = [("reserve", f"r{i}", "acme", S1 if i % 2 else S2, Spend(70), float(i)) for i in range(6)]
    log.insert(3, ("settle", "r1", "acme", S1, Spend(10), 3.5))

    def verdicts(fold: BudgetFold) -> list[bool]:
        out = []
        for op, rid, tenant, keys, amount, at in log:
            if op == "reserve":
                out.append(fold.reserve(rid, tenant, keys, amount, at) is None)
            else:
                fold.settle(rid, tenant, amount, at)
        return out

    first = verdicts(BudgetFold(TENANT, 60))
    other = BudgetFold(TENANT, 60)
    other.reserve("z", "beta", ((ScopeKind.TENANT, "beta"),), Spend(5), 999.0)
    assert verdicts(other) == first == [True, True, True, True, True, False]


def test_an_expired_hold_is_forgotten_after_a_second_ttl() -> None:
    fold = BudgetFold(TENANT, hold_ttl_s=60)
    fold.reserve("dead", "acme", S1, Spend(300), at=100.0)
    fold.reserve("x", "acme", S2, Spend(0), at=220.0)  # expired at 160, forgotten at 220
    fold.settle("dead", "acme", Spend(150), at=230.0)  # too late to be told from an unknown id
    assert fold.spent("acme", ScopeKind.TENANT, "acme") == Spend()
