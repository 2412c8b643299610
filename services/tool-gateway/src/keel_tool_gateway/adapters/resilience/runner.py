"""Retries (tenacity) around a breaker-guarded call, all inside the tool's time-out.

Sits after the policy decision and input validation: only a call that may run reaches it, and
the caller records only what it finally returns or raises. One attempt runs as
``breaker.guard`` + ``asyncio.timeout``; a retryable failure waits (exponential backoff with
jitter) and tries again while attempts and time are left and the breaker still admits calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)
from tenacity.stop import stop_base

from keel_tool_gateway.adapters.resilience.breaker import BreakerObserver, CircuitBreaker
from keel_tool_gateway.domain.resilience.errors import AttemptTimedOut, CallFailed, CircuitOpen
from keel_tool_gateway.domain.resilience.rules import counts_against_breaker, is_retryable
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings
from keel_tool_gateway.domain.resilience.spec import ToolResilience

T = TypeVar("T")


class ResilienceObserver(BreakerObserver, Protocol):
    def retried(self, tool: str, attempt: int, wait_s: float) -> None:
        """Attempt ``attempt`` failed with a retryable error; the next starts in ``wait_s``."""
        ...


@dataclass
class _Progress:
    ran: int = 0
    last: Exception | None = None


class _PastDeadline(stop_base):
    """Stop rather than wait into the time-out: the next attempt would have no time left."""

    def __init__(self, deadline: float, clock: Callable[[], float]) -> None:
        self._deadline = deadline
        self._clock = clock

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._clock() + retry_state.upcoming_sleep >= self._deadline


class _BreakerOpen(stop_base):
    """Stop when the breaker has opened: another attempt would only fail fast."""

    def __init__(self, breaker: CircuitBreaker | None) -> None:
        self._breaker = breaker

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._breaker is not None and self._breaker.reopens_in() > 0


class Resilience:
    """Retry and breaker state for the whole gateway: one breaker per dependency name, made
    on first use. ``clock`` must be monotonic; ``sleep`` and the clocks are injected so tests
    move time without waiting."""

    def __init__(
        self,
        settings: ResilienceSettings | None = None,
        *,
        observer: ResilienceObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.settings = settings or ResilienceSettings()
        self._observer = observer
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._breakers: dict[str, CircuitBreaker] = {}
        self._wait = wait_exponential_jitter(
            multiplier=self.settings.retry_backoff_s,
            max=self.settings.retry_max_backoff_s,
            jitter=self.settings.retry_jitter_s,
        )

    def breaker(self, name: str) -> CircuitBreaker:
        found = self._breakers.get(name)
        if found is None:
            found = CircuitBreaker(
                name,
                failure_threshold=self.settings.breaker_failure_threshold,
                reset_timeout_s=self.settings.breaker_reset_timeout_s,
                observer=self._observer,
                clock=self._clock,
                wall_clock=self._wall_clock,
            )
            self._breakers[name] = found
        return found

    def breakers(self) -> dict[str, CircuitBreaker]:
        return dict(self._breakers)

    async def call(
        self,
        tool: str,
        spec: ToolResilience,
        run: Callable[[], Awaitable[T]],
        timeout_s: float,
    ) -> T:
        """``run()``'s value. Raises ``CircuitOpen`` when the breaker refused before anything
        ran, else ``CallFailed`` with the last attempt's error."""
        breaker = self.breaker(spec.dependency or tool) if self.settings.breaker_enabled else None
        deadline = self._clock() + timeout_s
        attempts = spec.max_attempts or self.settings.retry_max_attempts
        progress = _Progress()
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts)
            | _PastDeadline(deadline, self._clock)
            | _BreakerOpen(breaker),
            wait=self._wait,
            retry=retry_if_exception(lambda exc: is_retryable(spec, exc)),
            sleep=self._sleep,
            before_sleep=lambda state: self._retried(tool, state),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(breaker, spec, run, deadline, timeout_s, progress)
        except CircuitOpen:
            if progress.last is None:
                raise
            # Opened by another call between two of ours: report what ours last saw.
            raise CallFailed(progress.last, progress.ran) from progress.last
        except Exception as exc:
            raise CallFailed(exc, progress.ran) from exc
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover

    async def _attempt(
        self,
        breaker: CircuitBreaker | None,
        spec: ToolResilience,
        run: Callable[[], Awaitable[T]],
        deadline: float,
        timeout_s: float,
        progress: _Progress,
    ) -> T:
        limit, per_attempt = deadline - self._clock(), False
        if spec.attempt_timeout_s is not None and spec.attempt_timeout_s < limit:
            limit, per_attempt = spec.attempt_timeout_s, True
        if breaker is None:
            return await self._timed(run, limit, per_attempt, timeout_s, progress)
        with breaker.guard(lambda exc: counts_against_breaker(spec, exc)):
            return await self._timed(run, limit, per_attempt, timeout_s, progress)

    @staticmethod
    async def _timed(
        run: Callable[[], Awaitable[T]],
        limit: float,
        per_attempt: bool,
        timeout_s: float,
        progress: _Progress,
    ) -> T:
        progress.ran += 1
        scope = asyncio.timeout(limit)
        try:
            async with scope:
                return await run()
        except TimeoutError as exc:
            if not scope.expired():
                progress.last = exc  # the tool's own TimeoutError: an ordinary failure
                raise
            shown = limit if per_attempt else timeout_s
            timed_out = AttemptTimedOut(shown, per_attempt=per_attempt)
            progress.last = timed_out
            raise timed_out from exc
        except Exception as exc:
            progress.last = exc
            raise

    def _retried(self, tool: str, state: RetryCallState) -> None:
        if self._observer is not None:
            self._observer.retried(tool, state.attempt_number, state.upcoming_sleep)
