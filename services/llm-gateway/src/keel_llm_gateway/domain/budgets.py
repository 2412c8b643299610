"""Token and cost budgets per session, agent and tenant, enforced without overshoot.

Before a call the gateway reserves an upper estimate (prompt estimate + the completion limit,
priced at the dearest model of the chain) against every scope of the request; after it, the
reservation is replaced by what the call really cost (``settle``), or dropped if it failed
(``release``). ``reserve`` checks all scopes and then books all of them without awaiting in
between, so concurrent requests on one event loop cannot each see the same headroom and
together exceed a limit. ``BudgetLedger`` is per replica and in memory; with limits set, the gateway
uses the ledger every replica shares instead (``domain/budget_fold.py`` folded from
``keel.llm.budget``, ADR 0015), and this one only when no limit is set (nothing to enforce).
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from keel_contracts.errors import ResourceExhausted
from keel_llm_gateway.domain.models import Scope


class ScopeKind(enum.StrEnum):
    SESSION = "session"
    AGENT = "agent"
    TENANT = "tenant"


class Limit(BaseModel):
    """None: unlimited."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tokens: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)


class BudgetLimits(BaseModel):
    """Defaults per scope kind; ``tenants`` overrides the tenant limit by tenant name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    session: Limit = Limit()
    agent: Limit = Limit()
    tenant: Limit = Limit()
    tenants: dict[str, Limit] = Field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether any limit is set (none: nothing to enforce, nothing to record)."""
        limits = [self.session, self.agent, self.tenant, *self.tenants.values()]
        return any(lim.tokens is not None or lim.cost_usd is not None for lim in limits)

    def for_scope(self, kind: ScopeKind, name: str) -> Limit:
        if kind is ScopeKind.TENANT and name in self.tenants:
            return self.tenants[name]
        return {ScopeKind.SESSION: self.session, ScopeKind.AGENT: self.agent}.get(kind, self.tenant)


@dataclass(frozen=True)
class Spend:
    tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(self.tokens + other.tokens, self.cost_usd + other.cost_usd)

    def __sub__(self, other: Spend) -> Spend:
        return Spend(self.tokens - other.tokens, self.cost_usd - other.cost_usd)


class BudgetExceeded(ResourceExhausted):
    def __init__(self, kind: ScopeKind, name: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name


@dataclass
class _Account:
    spent: Spend = Spend()
    reserved: Spend = Spend()
    # Reservations not yet settled; an account with any is never evicted.
    holds: int = 0

    @property
    def committed(self) -> Spend:
        return self.spent + self.reserved


@dataclass
class Reservation:
    keys: tuple[tuple[ScopeKind, str], ...]
    amount: Spend
    open: bool = field(default=True)
    # Set by a shared ledger: the id its records carry, and the tenant that orders them.
    id: str = ""
    tenant: str = ""


class Budgets(Protocol):
    """Where the gateway reserves and settles: this process's ``BudgetLedger``
    (``LocalBudgets``) or a ledger shared by every replica (``adapters.budget_topic``)."""

    async def reserve(self, scope: Scope, estimate: Spend) -> Reservation:
        """Hold ``estimate`` on every scope of the request or raise ``BudgetExceeded``."""
        ...

    async def settle(self, reservation: Reservation, actual: Spend) -> None: ...

    def release(self, reservation: Reservation) -> None:
        """Drop the hold of a call that failed. Not awaited: it runs on failure and
        cancellation paths, so a shared ledger sends it in the background."""
        ...


class LocalBudgets:
    """``Budgets`` over this process's ledger: no await between check and booking, so
    concurrent requests on one event loop never overshoot together."""

    def __init__(self, ledger: BudgetLedger) -> None:
        self.ledger = ledger

    async def reserve(self, scope: Scope, estimate: Spend) -> Reservation:
        """Without any limit nothing is booked (the reservation holds no scope, so settling
        it books nothing either): there is nothing to check a reservation against, and each
        call would otherwise fold three scopes twice for no decision."""
        if not self.ledger.enforcing:
            return Reservation((), estimate)
        return self.ledger.reserve(scope, estimate)

    async def settle(self, reservation: Reservation, actual: Spend) -> None:
        self.ledger.settle(reservation, actual)

    def release(self, reservation: Reservation) -> None:
        self.ledger.release(reservation)


def over_limit(
    limit: Limit, kind: ScopeKind, name: str, used: Spend, estimate: Spend
) -> BudgetExceeded | None:
    """The refusal if ``estimate`` on top of ``used`` passes ``limit``, else None."""
    after = used + estimate
    if limit.tokens is not None and after.tokens > limit.tokens:
        return BudgetExceeded(
            kind,
            name,
            f"{kind} {name!r} token budget exceeded: {used.tokens} used "
            f"or reserved + {estimate.tokens} for this call > limit {limit.tokens}",
        )
    if limit.cost_usd is not None and after.cost_usd > limit.cost_usd:
        return BudgetExceeded(
            kind,
            name,
            f"{kind} {name!r} cost budget exceeded: ${used.cost_usd:.6f}"
            f" used or reserved + ${estimate.cost_usd:.6f} for this call > limit "
            f"${limit.cost_usd:.6f}",
        )
    return None


def scopes_of(scope: Scope) -> tuple[tuple[ScopeKind, str], ...]:
    """The scopes a request is charged to; an empty id is no scope (nobody to charge)."""
    named = (
        (ScopeKind.SESSION, scope.session_id),
        (ScopeKind.AGENT, scope.agent_id),
        (ScopeKind.TENANT, scope.tenant),
    )
    return tuple((kind, name) for kind, name in named if name)


class BudgetLedger:
    def __init__(self, limits: BudgetLimits | None = None, *, max_tracked: int = 100_000) -> None:
        self._limits = limits or BudgetLimits()
        self._enforcing = self._limits.any
        self._max_tracked = max_tracked
        self._accounts: OrderedDict[tuple[ScopeKind, str], _Account] = OrderedDict()

    @property
    def enforcing(self) -> bool:
        """Whether any limit is set (worked out once: the limits are frozen)."""
        return self._enforcing

    def used(self, kind: ScopeKind, name: str) -> Spend:
        """Spent plus reserved: what the next reservation is checked against."""
        account = self._accounts.get((kind, name))
        return account.committed if account else Spend()

    def spent(self, kind: ScopeKind, name: str) -> Spend:
        account = self._accounts.get((kind, name))
        return account.spent if account else Spend()

    def reserve(self, scope: Scope, estimate: Spend) -> Reservation:
        """Book ``estimate`` on every scope of the request, or raise ``BudgetExceeded`` and
        book nothing."""
        keys = scopes_of(scope)
        for kind, name in keys:
            self._check(kind, name, estimate)
        for key in keys:
            account = self._account(key)
            account.reserved = account.reserved + estimate
            account.holds += 1
        self._evict()
        return Reservation(keys, estimate)

    def settle(self, reservation: Reservation, actual: Spend) -> None:
        """Replace the reservation by what the call cost (may exceed it: the next call is
        refused then)."""
        self._close(reservation, actual)

    def release(self, reservation: Reservation) -> None:
        """The call failed before spending anything the gateway knows of."""
        self._close(reservation, Spend())

    def _close(self, reservation: Reservation, actual: Spend) -> None:
        if not reservation.open:
            return
        reservation.open = False
        for key in reservation.keys:
            account = self._account(key)
            account.reserved = account.reserved - reservation.amount
            account.holds -= 1
            if not account.holds:
                account.reserved = Spend()  # no float residue once nothing is held
            account.spent = account.spent + actual

    def _check(self, kind: ScopeKind, name: str, estimate: Spend) -> None:
        refusal = over_limit(
            self._limits.for_scope(kind, name), kind, name, self.used(kind, name), estimate
        )
        if refusal is not None:
            raise refusal

    def _account(self, key: tuple[ScopeKind, str]) -> _Account:
        account = self._accounts.get(key)
        if account is None:
            account = self._accounts[key] = _Account()
        self._accounts.move_to_end(key)
        return account

    def _evict(self) -> None:
        """Forget the least recently charged idle scopes past ``max_tracked`` (old sessions),
        never one with a reservation outstanding."""
        excess = len(self._accounts) - self._max_tracked
        if excess <= 0:
            return
        idle = [key for key, acc in self._accounts.items() if not acc.holds][:excess]
        for key in idle:
            del self._accounts[key]
