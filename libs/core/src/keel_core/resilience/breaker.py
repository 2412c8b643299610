"""A circuit breaker for one dependency: closed, open, half-open.

Shared by the tool gateway (one per tool backend) and the LLM gateway (one per model provider).

Written here rather than taken from pybreaker or purgatory: pybreaker's asyncio support needs
tornado and holds a threading lock around the call, and both read the wall clock directly and
let every concurrent call through while half-open. This one is asyncio-native (no locks: state
changes happen between awaits), lets exactly one trial call through, takes an injected
monotonic clock (tests move time without sleeping) and reports every transition to an observer
(metrics).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NoReturn, Protocol

from keel_contracts.errors import Unavailable


class CircuitOpen(Unavailable):
    """The breaker refused the call: the dependency was not called."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


# Builds the error a refused call raises, from the breaker's name and a message; lets a service
# raise its own type (the tool gateway's is a ``ToolError``).
Rejection = Callable[[str, str], Exception]


class BreakerState(enum.IntEnum):
    """The values are the ones exported by the state gauge."""

    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class BreakerObserver(Protocol):
    def breaker_changed(self, name: str, state: BreakerState, previous: BreakerState) -> None:
        """Called on creation (``previous == state == CLOSED``) and on every transition."""
        ...

    def breaker_rejected(self, name: str) -> None:
        """A call failed fast because the breaker did not let it through."""
        ...


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int,
        reset_timeout_s: float,
        observer: BreakerObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rejection: Rejection = CircuitOpen,
    ) -> None:
        self.name = name
        self._rejection = rejection
        self._threshold = failure_threshold
        self._reset_timeout_s = reset_timeout_s
        self._observer = observer
        self._clock = clock
        self._wall_clock = wall_clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        if observer is not None:
            observer.breaker_changed(name, BreakerState.CLOSED, BreakerState.CLOSED)

    @property
    def state(self) -> BreakerState:
        """The state as the next call would find it (an open breaker past its cool-down
        reads as half-open)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def reopens_in(self) -> float:
        """Seconds until an open breaker lets a trial call through (0 when not open)."""
        if self._state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self._reset_timeout_s - self._clock())

    @contextmanager
    def guard(self, is_failure: Callable[[Exception], bool]) -> Iterator[None]:
        """Admit one call or raise the rejection (``CircuitOpen``); the block is the call.

        An exception for which ``is_failure`` is false counts as a success: the dependency
        answered (a tool refusing bad input is no sign that its backend is down). A cancelled
        call counts as nothing.
        """
        trial = self._admit()
        try:
            yield
        except Exception as exc:
            if is_failure(exc):
                self._failed(trial)
            else:
                self._succeeded(trial)
            raise
        except BaseException:
            self._abandoned(trial)
            raise
        self._succeeded(trial)

    def _admit(self) -> bool:
        """Whether the admitted call is the half-open trial."""
        if self._state is BreakerState.OPEN:
            if not self._cooled_down():
                self._reject(f"circuit open for {self.name} until {self._until()}")
            self._move(BreakerState.HALF_OPEN)
        if self._state is BreakerState.HALF_OPEN:
            if self._trial_running:
                self._reject(
                    f"circuit half-open for {self.name}: a trial call is running, "
                    "others fail fast until it ends"
                )
            self._trial_running = True
            return True
        return False

    def _reject(self, message: str) -> NoReturn:
        if self._observer is not None:
            self._observer.breaker_rejected(self.name)
        raise self._rejection(self.name, message)

    def _succeeded(self, trial: bool) -> None:
        self._failures = 0
        if trial:
            self._trial_running = False
            self._move(BreakerState.CLOSED)

    def _failed(self, trial: bool) -> None:
        self._failures += 1
        if trial:
            self._trial_running = False
            self._open()
        elif self._state is BreakerState.CLOSED and self._failures >= self._threshold:
            self._open()

    def _abandoned(self, trial: bool) -> None:
        """The call was cancelled: no verdict on the dependency, so the next call may try."""
        if trial:
            self._trial_running = False

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._move(BreakerState.OPEN)

    def _move(self, state: BreakerState) -> None:
        previous, self._state = self._state, state
        if self._observer is not None and previous is not state:
            self._observer.breaker_changed(self.name, state, previous)

    def _cooled_down(self) -> bool:
        return self._clock() >= self._opened_at + self._reset_timeout_s

    def _until(self) -> str:
        until = self._wall_clock() + self.reopens_in()
        return datetime.fromtimestamp(until, UTC).isoformat(timespec="milliseconds")
