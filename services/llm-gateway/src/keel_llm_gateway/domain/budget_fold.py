"""The budget ledger every gateway replica shares: a deterministic fold of ``keel.llm.budget``.

Each replica appends a reservation (an upper estimate on every scope of a request) and then
reads the log back; this fold decides, in log order, whether each reservation fits given the
reservations accepted and the settlements folded before it. It uses nothing but the records
(no wall clock, no replica-local state), so every replica — and every restart — reaches the
same verdict for every record, and the replica that wrote a reservation answers from it.

All scopes of a request belong to its tenant, and a tenant's records share one partition, so
the order that matters is total. Accounts are kept per tenant (a session id reused by another
tenant is another account), and so is the clock: the time of the latest record of that
tenant, which expires holds whose writer never settled them (it died, or gave up waiting).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keel_llm_gateway.domain.budgets import (
    BudgetExceeded,
    BudgetLimits,
    ScopeKind,
    Spend,
    over_limit,
)

Key = tuple[ScopeKind, str]


@dataclass(frozen=True)
class Hold:
    """An accepted reservation not yet settled."""

    id: str
    keys: tuple[Key, ...]
    amount: Spend
    at: float


@dataclass
class _Account:
    spent: Spend = Spend()
    reserved: Spend = Spend()
    holds: int = 0


@dataclass
class _Tenant:
    accounts: dict[Key, _Account] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)
    # Holds that expired unsettled: a late settlement still adds its real cost.
    expired: dict[str, Hold] = field(default_factory=dict)
    clock: float = 0.0

    def account(self, key: Key) -> _Account:
        found = self.accounts.get(key)
        if found is None:
            found = self.accounts[key] = _Account()
        return found


class BudgetFold:
    """Args:
    limits: the same on every replica (a replica with other limits would reach other
        verdicts: roll a change out by restarting all of them).
    hold_ttl_s: a hold older than this, by the records' clock, is dropped: longer than the
        slowest call (every attempt of a chain plus a repair retry).
    """

    def __init__(self, limits: BudgetLimits, hold_ttl_s: float) -> None:
        self._limits = limits
        self._ttl = hold_ttl_s
        self._tenants: dict[str, _Tenant] = {}

    def reserve(
        self, reservation_id: str, tenant: str, keys: tuple[Key, ...], amount: Spend, at: float
    ) -> BudgetExceeded | None:
        """Fold one reservation: None if it fits every scope (and is now held), else the
        refusal (and nothing is held). A repeated id is answered as the first time."""
        book = self._advance(tenant, at)
        if reservation_id in book.holds or reservation_id in book.expired:
            return None
        for kind, name in keys:
            used = self._used(book, (kind, name))
            refusal = over_limit(self._limits.for_scope(kind, name), kind, name, used, amount)
            if refusal is not None:
                return refusal
        for key in keys:
            account = book.account(key)
            account.reserved = account.reserved + amount
            account.holds += 1
        book.holds[reservation_id] = Hold(reservation_id, keys, amount, at)
        return None

    def settle(self, reservation_id: str, tenant: str, actual: Spend, at: float) -> None:
        """Replace the hold by the real cost. A hold already expired still gets its cost
        (the call did spend it); an unknown or refused id changes nothing."""
        book = self._advance(tenant, at)
        hold = book.holds.pop(reservation_id, None)
        if hold is not None:
            self._drop(book, hold)
        else:
            hold = book.expired.pop(reservation_id, None)
            if hold is None:
                return
        for key in hold.keys:
            account = book.account(key)
            account.spent = account.spent + actual

    def release(self, reservation_id: str, tenant: str, at: float) -> None:
        self.settle(reservation_id, tenant, Spend(), at)

    def used(self, tenant: str, kind: ScopeKind, name: str) -> Spend:
        """Spent plus held: what the next reservation of ``tenant`` is checked against."""
        book = self._tenants.get(tenant)
        return self._used(book, (kind, name)) if book else Spend()

    def spent(self, tenant: str, kind: ScopeKind, name: str) -> Spend:
        book = self._tenants.get(tenant)
        account = book.accounts.get((kind, name)) if book else None
        return account.spent if account else Spend()

    def held(self, tenant: str) -> int:
        book = self._tenants.get(tenant)
        return len(book.holds) if book else 0

    @staticmethod
    def _used(book: _Tenant, key: Key) -> Spend:
        account = book.accounts.get(key)
        return account.spent + account.reserved if account else Spend()

    def _advance(self, tenant: str, at: float) -> _Tenant:
        """The tenant's book with its clock moved to ``at`` (never back: writers' clocks
        differ a little) and the holds that outlived ``hold_ttl_s`` dropped."""
        book = self._tenants.get(tenant)
        if book is None:
            book = self._tenants[tenant] = _Tenant()
        if at > book.clock:
            book.clock = at
        stale = [h for h in book.holds.values() if h.at + self._ttl <= book.clock]
        for hold in stale:
            del book.holds[hold.id]
            self._drop(book, hold)
            book.expired[hold.id] = hold
        if book.expired:
            # A settlement is written as its call ends, within the TTL of its hold; one more
            # TTL of grace covers a slow write. Past that, forget the expired hold.
            forgotten = [h.id for h in book.expired.values() if h.at + 2 * self._ttl <= book.clock]
            for hold_id in forgotten:
                del book.expired[hold_id]
        return book

    @staticmethod
    def _drop(book: _Tenant, hold: Hold) -> None:
        for key in hold.keys:
            account = book.account(key)
            account.reserved = account.reserved - hold.amount
            account.holds -= 1
            if not account.holds:
                account.reserved = Spend()  # no float residue once nothing is held
