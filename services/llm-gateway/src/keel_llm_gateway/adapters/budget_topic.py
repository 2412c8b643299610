"""Budgets shared by every gateway replica, on ``keel.llm.budget`` (ADR 0015).

A reservation is a record appended with acks=all under the tenant's key; the answer is the
verdict ``BudgetFold`` reaches on that record once this replica's follower has folded up to
it, which is the verdict every replica reaches. Settlements are appended (acknowledged) before
the completion is returned, so a restart folds the spend back; releases are sent in the
background (a lost one is a hold that expires after the TTL).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable

from keel_contracts.errors import Unavailable
from keel_contracts.events import BudgetReserved, BudgetScope, BudgetSettled, Envelope
from keel_contracts.topics import LLM_BUDGET
from keel_core.bus.producer import Publisher
from keel_core.ordered_log import OrderedLog
from keel_core.runtime import Follower
from keel_llm_gateway.domain.budget_fold import BudgetFold
from keel_llm_gateway.domain.budgets import (
    BudgetExceeded,
    Reservation,
    ScopeKind,
    Spend,
    scopes_of,
)
from keel_llm_gateway.domain.models import Scope

log = logging.getLogger(__name__)


def partition_key(tenant: str) -> str:
    """Every record of a tenant on one partition (requests without a tenant share one)."""
    return tenant or "-"


class TopicBudgets:
    """``Budgets`` over the shared log: exact across replicas and restarts."""

    def __init__(
        self,
        fold: BudgetFold,
        follower: Follower,
        producer: Publisher,
        source: str,
        clock: Callable[[], float],
        *,
        wait_s: float = 10.0,
        topic: str = LLM_BUDGET,
    ) -> None:
        self.fold = fold
        self._source = source
        self._clock = clock
        self._log: OrderedLog[BudgetExceeded | None] = OrderedLog(
            follower, producer, topic, self._apply, wait_s=wait_s
        )
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Fold the whole topic (every spend so far), then follow it: before serving."""
        await self._log.start()

    async def stop(self) -> None:
        """Let releases in flight land (SIGTERM: flush)."""
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    async def reserve(self, scope: Scope, estimate: Spend) -> Reservation:
        keys = scopes_of(scope)
        reservation = Reservation(keys, estimate, id=uuid.uuid4().hex, tenant=scope.tenant)
        payload = BudgetReserved(
            reservation_id=reservation.id,
            tenant=scope.tenant,
            scopes=[BudgetScope(kind=kind.value, name=name) for kind, name in keys],
            tokens=estimate.tokens,
            cost_usd=estimate.cost_usd,
            at=self._clock(),
        )
        try:
            refusal = await self._log.append(self._wrap(payload), partition_key(scope.tenant))
        except Unavailable:
            # The record may still land and be accepted after we gave up: release it, so the
            # hold is freed as soon as the log gets there (a no-op if it never was accepted).
            self.release(reservation)
            raise
        if refusal is not None:
            reservation.open = False
            raise refusal
        return reservation

    async def settle(self, reservation: Reservation, actual: Spend) -> None:
        if not reservation.open:
            return
        reservation.open = False
        payload = self._settled(reservation, actual, released=False)
        try:
            await self._log.record(self._wrap(payload), partition_key(reservation.tenant))
        except Exception as exc:  # noqa: BLE001 - the answer exists; see below
            # The model has answered and its cost is spent: failing the call now would only
            # make the caller pay again. The hold (the upper estimate) stays counted until
            # its TTL; the real cost is then lost: logged for the operator.
            log.warning("settlement of %s not recorded: %r", reservation.id, exc)

    def release(self, reservation: Reservation) -> None:
        if not reservation.open:
            return
        reservation.open = False
        payload = self._settled(reservation, Spend(), released=True)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # a stream finalized outside the loop: the TTL frees the hold
            log.warning("release of %s not sent: no event loop", reservation.id)
            return
        task = loop.create_task(self._send_release(payload, reservation.tenant))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_release(self, payload: BudgetSettled, tenant: str) -> None:
        try:
            await self._log.record(self._wrap(payload), partition_key(tenant))
        except Exception as exc:  # noqa: BLE001 - the hold expires after the TTL instead
            log.warning("release of %s not recorded: %r", payload.reservation_id, exc)

    def _settled(self, reservation: Reservation, actual: Spend, *, released: bool) -> BudgetSettled:
        return BudgetSettled(
            reservation_id=reservation.id,
            tenant=reservation.tenant,
            tokens=max(actual.tokens, 0),
            cost_usd=max(actual.cost_usd, 0.0),
            released=released,
            at=self._clock(),
        )

    def _wrap(self, payload: BudgetReserved | BudgetSettled) -> Envelope:
        return Envelope.wrap(payload, source=self._source, session_id=partition_key(payload.tenant))

    def _apply(self, envelope: Envelope) -> BudgetExceeded | None:
        """The fold of one record; records of other types or that do not parse change
        nothing (and so are the same nothing on every replica)."""
        try:
            if envelope.type == BudgetReserved.event_type:
                asked = envelope.parse(BudgetReserved)
                keys = tuple((ScopeKind(s.kind), s.name) for s in asked.scopes)
                amount = Spend(asked.tokens, asked.cost_usd)
                return self.fold.reserve(asked.reservation_id, asked.tenant, keys, amount, asked.at)
            if envelope.type == BudgetSettled.event_type:
                done = envelope.parse(BudgetSettled)
                actual = Spend(done.tokens, done.cost_usd)
                self.fold.settle(done.reservation_id, done.tenant, actual, done.at)
        except ValueError as exc:
            log.warning("ignoring a record of %s: %s", LLM_BUDGET, exc)
        return None
