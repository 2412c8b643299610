"""Limits shared across replicas: each replica publishes what it let through to
``keel.ratelimit.spend`` and debits what the others published (ADR 0012).

Approximate by design: a replica sees another's spend after the publish interval plus the
follow lag, so a key can pass its limit by what the other replicas let through in that
window, never more. Nothing waits on the broker on the decision path; a refused publish is
kept and sent with the next one.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter

from keel_contracts.events import Envelope, RateLimitSpend, RateLimitSpent
from keel_contracts.topics import RATELIMIT_SPEND
from keel_core.periodic import Periodic
from keel_core.ratelimit.limiter import RateLimiter

if TYPE_CHECKING:  # keel_core.runtime imports the gRPC server, which imports this package
    from keel_core.bus.producer import Publisher
    from keel_core.runtime import Follower, Runtime

log = logging.getLogger(__name__)


class SpendSharer:
    """Publishes one limiter's spend and folds the spend of the same service's other
    replicas; ``replica`` is unique per run, so a restarted replica never skips records its
    previous run wrote (it starts at the topic's end and sees none of them anyway)."""

    def __init__(
        self,
        limiter: RateLimiter,
        publisher: Publisher,
        follower: Follower,
        service: str,
        replica: str = "",
        interval_s: float = 0.25,
        topic: str = RATELIMIT_SPEND,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self._limiter = limiter
        self._publisher = publisher
        self._follower = follower
        self.service = service
        self.replica = replica or f"{service}-{uuid.uuid4().hex[:12]}"
        self._topic = topic
        self._periodic = Periodic(f"{service} rate-limit spend", interval_s, self.publish)
        # How much of the other replicas' spend this one has folded (and that it folds at all).
        self._folded = Counter(
            "keel_ratelimit_spend_folded_records",
            "Spend records of other replicas debited from this replica's buckets",
            registry=registry if registry is not None else CollectorRegistry(),
        )

    async def start(self) -> None:
        """Follow from the end (older spend has refilled long ago), then publish on a timer."""
        await self._follower.start_at_end()
        self._follower.follow(self.apply)
        await self._periodic.start()

    async def stop(self) -> None:
        """Stop publishing and send what is left (the follower's owner stops the follower)."""
        await self._periodic.stop()
        try:
            await self.publish()
        except Exception:  # stopping goes on: other replicas just see less spend
            log.exception("could not publish the last rate-limit spend of %s", self.replica)

    async def publish(self) -> None:
        """Send what was let through since the last publish (nothing when nothing was)."""
        spent = self._limiter.drain()
        if not spent:
            return
        payload = RateLimitSpent(
            service=self.service,
            replica=self.replica,
            at=time.time(),
            spends=[RateLimitSpend(kind=k, key=key, tokens=t) for (k, key), t in spent.items()],
        )
        envelope = Envelope.wrap(payload, source=self.service, session_id="")
        try:
            await self._publisher.publish(self._topic, envelope, key=self.replica)
        except Exception:
            self._limiter.restore(spent)
            raise

    async def apply(self, envelope: Envelope) -> None:
        """Debit another replica's spend; our own records and other services' are skipped."""
        if envelope.type != RateLimitSpent.event_type:
            return
        try:
            spent = envelope.parse(RateLimitSpent)
        except ValueError:
            log.warning("skipping a malformed rate-limit record %s", envelope.id)
            return
        if spent.service != self.service or spent.replica == self.replica:
            return
        for spend in spent.spends:
            self._limiter.debit(spend.kind, spend.key, spend.tokens)
        self._folded.inc()


def share(limiter: RateLimiter, runtime: Runtime, service: str) -> SpendSharer | None:
    """Wire sharing onto a runtime when the settings ask for it (started with the runtime,
    stopped before the producer)."""
    if not limiter.settings.shared or not limiter.settings.enabled:
        return None
    sharer = SpendSharer(
        limiter,
        runtime.producer,
        runtime.follower(RATELIMIT_SPEND, "ratelimit"),
        service,
        interval_s=limiter.settings.publish_interval_s,
        registry=runtime.registry,
    )
    runtime.on_start(sharer.start)
    runtime.on_stop(sharer.stop)
    return sharer
