"""Failed logins per client address: after ``limit`` in a minute the inbox answers 429 until
the oldest falls out of the window, so a token cannot be guessed at network speed. Kept in
memory (like the logins themselves); the table is bounded so a spray of addresses cannot grow
it without limit."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

WINDOW_S = 60.0


class LoginThrottle:
    def __init__(
        self,
        limit: int,
        *,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 10_000,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._clock = clock
        self._max = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        failures = self._recent(address)
        return failures is not None and len(failures) >= self._limit

    def failed(self, address: str) -> None:
        failures = self._recent(address)
        if failures is None:
            if len(self._failures) >= self._max:
                del self._failures[next(iter(self._failures))]
            failures = self._failures[address] = deque()
        failures.append(self._clock())

    def _recent(self, address: str) -> deque[float] | None:
        failures = self._failures.get(address)
        if failures is None:
            return None
        cutoff = self._clock() - self._window_s
        while failures and failures[0] <= cutoff:
            failures.popleft()
        if not failures:
            del self._failures[address]
            return None
        return failures
