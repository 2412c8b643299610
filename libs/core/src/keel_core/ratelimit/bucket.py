"""One token bucket: the arithmetic every limit in Keel shares, on an injected clock.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens a second. A decision
takes ``cost`` tokens or says how long until it could (the retry-after a refusal carries).
Spend another replica reported is ``debit``-ed: the level may go below zero, so a burst two
replicas let through at once is paid back by refusals afterwards instead of being forgotten.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Clock = Callable[[], float]


class TokenBucket:
    __slots__ = ("_burst", "_clock", "_level", "_rate", "_stamp")

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        if rate <= 0 or burst <= 0:
            raise ValueError(f"a bucket needs rate > 0 and burst > 0 (got {rate}, {burst})")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._level = burst
        self._stamp = clock()

    @property
    def level(self) -> float:
        """Tokens available now (negative after a debit larger than what was left)."""
        self._refill()
        return self._level

    def take(self, cost: float = 1.0) -> float:
        """Take ``cost`` tokens and answer 0.0, or take nothing and answer the seconds until
        ``cost`` tokens will be there (a cost above ``burst`` can never pass: ``inf``)."""
        if cost > self._burst:
            return math.inf
        self._refill()
        if self._level >= cost:
            self._level -= cost
            return 0.0
        return (cost - self._level) / self._rate

    def debit(self, amount: float) -> None:
        """Spend taken elsewhere (another replica): lowers the level, at most to ``-burst``,
        so a backlog of spend arriving at once (after the topic was unreachable) cannot lock a
        key out for longer than ``(burst + 1) / rate`` seconds."""
        self._refill()
        self._level = max(self._level - amount, -self._burst)

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        self._stamp = now
        if elapsed > 0:
            self._level = min(self._burst, self._level + elapsed * self._rate)
