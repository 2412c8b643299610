"""Running totals of state conditions, kept durably on ``keel.policy.state``.

Every replica folds the whole topic at start (``load``) and then follows it, so a reservation
written by any replica counts everywhere, and a restart counts what was reserved before it.
A reservation is applied to the local view *before* its write is sent (in the same step of
the event loop as the decision that read the totals), so two concurrent calls in one process
can never both pass a limit; it is withdrawn if the broker refuses the write, and the call is
then answered UNAVAILABLE (nothing was let through unrecorded). Between replicas the view
lags by the follow delay: see docs/adr/0010-policy-state.md for that race.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from keel_contracts.errors import Unavailable
from keel_contracts.events import Envelope
from keel_contracts.events.policy import PolicyStateReserved, StateCharge
from keel_contracts.topics import POLICY_STATE, POLICY_STATE_WINDOW_MS
from keel_core.bus.producer import Publisher
from keel_core.runtime import Follower
from keel_policy.domain.state import Charge, StateEntry, StateLedger, entries

log = logging.getLogger(__name__)

WINDOW_S = POLICY_STATE_WINDOW_MS / 1000
# Entries past every window are forgotten from memory every this many reservations.
PRUNE_EVERY = 1000


class TopicState:
    def __init__(
        self,
        ledger: StateLedger,
        follower: Follower,
        producer: Publisher,
        source: str,
        clock: Callable[[], float],
        topic: str = POLICY_STATE,
    ) -> None:
        self.ledger = ledger
        self._follower = follower
        self._producer = producer
        self._source = source
        self._clock = clock
        self._topic = topic
        self._written = 0

    async def start(self) -> None:
        """Fold what the topic holds, then follow it (before the gRPC server answers)."""
        loaded = await self._follower.load()
        for envelope in loaded:
            self._apply_one(envelope)
        self.ledger.prune(self._clock() - WINDOW_S)
        log.info("policy state: %d reservations loaded from %s", len(loaded), self._topic)
        self._follower.follow(self._apply)

    async def reserve(self, charges: Sequence[Charge], call_id: str, at: float) -> None:
        """Count the call now, then make it durable; raise Unavailable (and withdraw it) if
        the broker refuses."""
        added = [e for e in entries(charges, call_id, at) if self.ledger.add(e)]
        if not added:
            return
        try:
            await self._write(call_id, at, added)
        except Exception as exc:
            for entry in added:
                self.ledger.remove(entry)
            log.warning("state reservation of %s not recorded: %r", call_id, exc)
            raise Unavailable(
                "policy state could not be recorded; the call was not allowed"
            ) from exc
        self._written += 1
        if self._written % PRUNE_EVERY == 0:
            self.ledger.prune(self._clock() - WINDOW_S)

    async def _write(self, call_id: str, at: float, added: list[StateEntry]) -> None:
        """One record for the call: it lands whole or not at all."""
        charges = [StateCharge(meter=e.meter, key=e.key, amount=e.amount) for e in added]
        payload = PolicyStateReserved(call_id=call_id, at=at, charges=charges)
        envelope = Envelope.wrap(payload, source=self._source, session_id=call_id)
        await self._producer.publish(self._topic, envelope, key=call_id)

    async def _apply(self, envelope: Envelope) -> None:
        self._apply_one(envelope)

    def _apply_one(self, envelope: Envelope) -> None:
        try:
            record = envelope.parse(PolicyStateReserved)
        except ValueError as exc:
            log.warning("ignoring a record of %s: %s", self._topic, exc)
            return
        for charge in record.charges:
            self.ledger.add(
                StateEntry(charge.meter, charge.key, record.call_id, record.at, charge.amount)
            )
