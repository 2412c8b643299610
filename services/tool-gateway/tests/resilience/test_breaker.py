"""The circuit breaker on its own: closed -> open -> half-open -> closed / open again."""

import asyncio

import pytest

from keel_tool_gateway.adapters.resilience.breaker import BreakerState, CircuitBreaker
from keel_tool_gateway.domain.registry import ToolError
from keel_tool_gateway.domain.resilience.errors import CircuitOpen
from keel_tool_gateway.testing.resilience import FakeTime, RecordingObserver

CLOSED, OPEN, HALF = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


def make(
    threshold: int = 3, reset_s: float = 10.0
) -> tuple[CircuitBreaker, FakeTime, RecordingObserver]:
    time, observer = FakeTime(now=1_700_000_000.0), RecordingObserver()
    breaker = CircuitBreaker(
        "backend",
        failure_threshold=threshold,
        reset_timeout_s=reset_s,
        observer=observer,
        clock=time.clock,
        wall_clock=time.clock,
    )
    return breaker, time, observer


def always(_: Exception) -> bool:
    return True


def fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(ConnectionError), breaker.guard(always):
        raise ConnectionError("down")


def succeed(breaker: CircuitBreaker) -> None:
    with breaker.guard(always):
        pass


def test_opens_after_threshold_consecutive_failures_and_fails_fast() -> None:
    breaker, _, observer = make(threshold=3)
    fail(breaker)
    fail(breaker)
    assert breaker.state is CLOSED
    fail(breaker)
    assert breaker.state is OPEN
    ran = False
    with pytest.raises(CircuitOpen) as caught, breaker.guard(always):
        ran = True
    assert not ran
    # 1_700_000_000 + 10 s, as UTC with milliseconds.
    assert str(caught.value) == "circuit open for backend until 2023-11-14T22:13:30.000+00:00"
    assert caught.value.name == "backend"
    assert observer.rejections == ["backend"]
    assert observer.transitions == [("backend", CLOSED, CLOSED), ("backend", CLOSED, OPEN)]


def test_a_success_resets_the_count() -> None:
    breaker, _, _ = make(threshold=3)
    for _ in range(5):
        fail(breaker)
        fail(breaker)
        succeed(breaker)
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0


def test_failures_that_do_not_count_keep_it_closed() -> None:
    breaker, _, _ = make(threshold=1)
    for _ in range(3):
        with pytest.raises(ToolError), breaker.guard(lambda exc: not isinstance(exc, ToolError)):
            raise ToolError("bad input")
    assert breaker.state is CLOSED


def test_half_open_trial_success_closes() -> None:
    breaker, time, observer = make(threshold=1, reset_s=10)
    fail(breaker)
    time.advance(9.9)
    assert breaker.state is OPEN
    assert breaker.reopens_in() == pytest.approx(0.1)
    time.advance(0.1)
    assert breaker.state is HALF  # as the next call finds it
    succeed(breaker)
    assert breaker.state is CLOSED
    assert [t[1:] for t in observer.transitions] == [
        (CLOSED, CLOSED),
        (CLOSED, OPEN),
        (OPEN, HALF),
        (HALF, CLOSED),
    ]


def test_half_open_trial_failure_opens_again_for_a_full_cool_down() -> None:
    breaker, time, observer = make(threshold=1, reset_s=10)
    fail(breaker)
    time.advance(10)
    fail(breaker)  # the trial
    assert breaker.state is OPEN
    assert breaker.reopens_in() == pytest.approx(10)
    with pytest.raises(CircuitOpen), breaker.guard(always):
        pass
    assert [t[2] for t in observer.transitions] == [CLOSED, OPEN, HALF, OPEN]


async def test_half_open_lets_exactly_one_trial_through() -> None:
    breaker, time, observer = make(threshold=1, reset_s=1)
    fail(breaker)
    time.advance(1)
    release = asyncio.Event()
    ran: list[int] = []

    async def call(i: int) -> None:
        with breaker.guard(always):
            ran.append(i)
            await release.wait()

    trial = asyncio.create_task(call(0))
    await asyncio.sleep(0)
    for i in range(1, 4):
        with pytest.raises(CircuitOpen, match="half-open for backend: a trial call is running"):
            await call(i)
    release.set()
    await trial
    assert ran == [0]
    assert observer.rejections == ["backend"] * 3
    assert breaker.state is CLOSED


async def test_a_cancelled_trial_frees_the_slot_without_a_verdict() -> None:
    breaker, time, _ = make(threshold=1, reset_s=1)
    fail(breaker)
    time.advance(1)

    async def hang() -> None:
        with breaker.guard(always):
            await asyncio.Event().wait()

    task = asyncio.create_task(hang())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is HALF
    succeed(breaker)  # the next call is the trial
    assert breaker.state is CLOSED
