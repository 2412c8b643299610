"""Keyed token buckets: one per (kind, key), made on first use from the settings.

A decision is one synchronous step (no ``await`` between looking and taking), so concurrent
calls in one process can never both pass a bucket with room for one. What this replica let
through is kept as pending spend until the sharer publishes it; what other replicas let
through is debited as it is followed (``keel_core.ratelimit.shared``).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass

from keel_core.ratelimit.bucket import Clock, TokenBucket
from keel_core.ratelimit.config import RateLimitSettings

Key = tuple[str, str]


@dataclass(frozen=True)
class Refusal:
    """Why a decision refused, and when to try again (whole seconds, at least 1, for the
    ``retry-after`` a caller reads; ``inf`` never fits)."""

    kind: str
    key: str
    retry_after_s: float

    @property
    def retry_after(self) -> int:
        if math.isinf(self.retry_after_s):
            return 0
        return max(1, math.ceil(self.retry_after_s))

    def message(self) -> str:
        if math.isinf(self.retry_after_s):
            return f"rate limit of {self.kind} {self.key!r}: the cost exceeds the burst"
        return f"rate limit of {self.kind} {self.key!r} reached; retry after {self.retry_after} s"


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self._clock = clock
        self._buckets: dict[Key, TokenBucket | None] = {}
        self._pending: defaultdict[Key, float] = defaultdict(float)

    def check(self, kind: str, key: str, cost: float = 1.0) -> Refusal | None:
        """Take ``cost`` from the (kind, key) bucket: None when let through, else the refusal.
        A kind without a limit is never refused and records nothing."""
        bucket = self._bucket(kind, key)
        if bucket is None:
            return None
        wait = bucket.take(cost)
        if wait > 0:
            return Refusal(kind, key, wait)
        self._pending[(kind, key)] += cost
        return None

    def drain(self) -> dict[Key, float]:
        """What this replica let through since the last drain (for the sharer to publish)."""
        spent = dict(self._pending)
        self._pending.clear()
        return spent

    def restore(self, spent: dict[Key, float]) -> None:
        """Put back a drain that could not be published, to go with the next one."""
        for key, amount in spent.items():
            self._pending[key] += amount

    def debit(self, kind: str, key: str, amount: float) -> None:
        """Spend another replica let through."""
        bucket = self._bucket(kind, key)
        if bucket is not None:
            bucket.debit(amount)

    def level(self, kind: str, key: str) -> float:
        """Tokens left for the key now (``inf`` when unlimited)."""
        bucket = self._bucket(kind, key)
        return math.inf if bucket is None else bucket.level

    def _bucket(self, kind: str, key: str) -> TokenBucket | None:
        if (kind, key) in self._buckets:
            return self._buckets[(kind, key)]
        limit = self.settings.limit_of(kind, key)
        bucket = None if limit is None else TokenBucket(limit.rate, limit.burst, self._clock)
        self._buckets[(kind, key)] = bucket
        return bucket
