"""Retries with backoff and jitter, only for retryable errors, inside the tool's time-out."""

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from pydantic import BaseModel, ValidationError

from keel_tool_gateway.adapters.resilience.runner import Resilience
from keel_tool_gateway.domain.registry import ToolError
from keel_tool_gateway.domain.resilience.errors import (
    AttemptTimedOut,
    CallFailed,
    CircuitOpen,
    RetryableToolError,
)
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings
from keel_tool_gateway.domain.resilience.spec import ToolResilience
from keel_tool_gateway.testing.resilience import FakeTime, RecordingObserver

SPEC = ToolResilience()


def make(**settings: float | int | bool) -> tuple[Resilience, FakeTime, RecordingObserver]:
    time, observer = FakeTime(), RecordingObserver()
    resilience = Resilience(
        ResilienceSettings.model_validate(settings),
        observer=observer,
        clock=time.clock,
        wall_clock=time.clock,
        sleep=time.sleep,
    )
    return resilience, time, observer


def failing(times: int, error: Exception) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []

    async def run() -> str:
        calls.append(len(calls) + 1)
        if len(calls) <= times:
            raise error
        return f"ok {len(calls)}"

    return calls, run


async def test_retryable_failures_are_retried_until_success() -> None:
    resilience, time, observer = make(
        retry_max_attempts=4, retry_backoff_s=0.1, retry_max_backoff_s=5, retry_jitter_s=0.05
    )
    calls, run = failing(3, RetryableToolError("503"))
    assert await resilience.call("flaky", SPEC, run, 10.0) == "ok 4"
    assert calls == [1, 2, 3, 4]
    # Exponential: 0.1, 0.2, 0.4, each plus up to 0.05 of jitter.
    assert len(time.sleeps) == 3
    for n, slept in enumerate(time.sleeps):
        assert 0.1 * 2**n <= slept <= 0.1 * 2**n + 0.05
    assert [(t, a) for t, a, _ in observer.retries] == [("flaky", 1), ("flaky", 2), ("flaky", 3)]
    assert [w for *_, w in observer.retries] == time.sleeps


async def test_jitter_spreads_the_waits() -> None:
    waits = set()
    for _ in range(20):
        resilience, time, _ = make(retry_max_attempts=2, retry_backoff_s=0.1, retry_jitter_s=0.1)
        _, run = failing(1, RetryableToolError("503"))
        await resilience.call("flaky", SPEC, run, 10.0)
        waits.add(time.sleeps[0])
    assert len(waits) > 1
    assert all(0.1 <= w <= 0.2 for w in waits)


async def test_waits_are_capped() -> None:
    resilience, time, _ = make(
        retry_max_attempts=6,
        retry_backoff_s=1,
        retry_max_backoff_s=2.5,
        retry_jitter_s=0,
        breaker_failure_threshold=10,
    )
    _, run = failing(5, RetryableToolError("503"))
    await resilience.call("flaky", SPEC, run, 60.0)
    assert time.sleeps == [1, 2, 2.5, 2.5, 2.5]


async def test_attempts_are_bounded_and_the_last_error_is_reported() -> None:
    resilience, _, observer = make(retry_max_attempts=3, retry_jitter_s=0)
    calls, run = failing(100, RetryableToolError("still down"))
    with pytest.raises(CallFailed) as caught:
        await resilience.call("flaky", SPEC, run, 10.0)
    assert calls == [1, 2, 3]
    assert caught.value.attempts == 3
    assert str(caught.value.cause) == "still down"
    assert len(observer.retries) == 2


async def test_a_tool_can_ask_for_more_or_fewer_attempts() -> None:
    resilience, _, _ = make(retry_max_attempts=3, retry_jitter_s=0)
    calls, run = failing(100, RetryableToolError("down"))
    with pytest.raises(CallFailed):
        await resilience.call("flaky", ToolResilience(max_attempts=1), run, 10.0)
    assert calls == [1]


class _Model(BaseModel):
    n: int


def _validation_error() -> ValidationError:
    try:
        _Model.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("validated")


@pytest.mark.parametrize(
    "error",
    [ToolError("bad input"), ValueError("bug"), ConnectionError("refused"), _validation_error()],
    ids=["tool-error", "unexpected", "undeclared-transport", "validation"],
)
async def test_errors_not_declared_retryable_run_once(error: Exception) -> None:
    resilience, time, _ = make(retry_max_attempts=5)
    calls, run = failing(100, error)
    with pytest.raises(CallFailed) as caught:
        await resilience.call("t", SPEC, run, 10.0)
    assert calls == [1]
    assert caught.value.cause is error
    assert time.sleeps == []


async def test_a_tool_declares_foreign_exceptions_retryable() -> None:
    resilience, _, _ = make(retry_max_attempts=3, retry_jitter_s=0)
    spec = ToolResilience(retryable=(ConnectionError,))
    calls, run = failing(2, ConnectionRefusedError("refused"))
    assert await resilience.call("http", spec, run, 10.0) == "ok 3"
    assert calls == [1, 2, 3]
    calls, run = failing(2, ValueError("not declared"))
    with pytest.raises(CallFailed):
        await resilience.call("http", spec, run, 10.0)
    assert calls == [1]


async def test_no_wait_ends_past_the_tool_time_out() -> None:
    resilience, time, _ = make(
        retry_max_attempts=10, retry_backoff_s=0.4, retry_max_backoff_s=10, retry_jitter_s=0
    )
    calls, run = failing(100, RetryableToolError("down"))
    started = time.now
    with pytest.raises(CallFailed) as caught:
        await resilience.call("flaky", SPEC, run, 2.0)
    # Waits 0.4 + 0.8 = 1.2 s; the next (1.6 s) would end past 2 s, so it stops at 3 attempts.
    assert time.sleeps == [0.4, 0.8]
    assert time.now - started < 2.0
    assert calls == [1, 2, 3]
    assert caught.value.attempts == 3


async def test_a_time_out_of_the_whole_call_is_never_retried() -> None:
    resilience, _, _ = make(retry_max_attempts=3)
    spec = ToolResilience(idempotent=True)  # no attempt_timeout_s: the time-out ends it all
    calls: list[int] = []

    async def hang() -> str:
        calls.append(1)
        await asyncio.sleep(5)
        return "late"

    with pytest.raises(CallFailed) as caught:
        await resilience.call("slow", spec, hang, 0.05)
    assert calls == [1]
    assert isinstance(caught.value.cause, AttemptTimedOut)
    assert caught.value.cause.limit_s == 0.05


@pytest.mark.parametrize(("idempotent", "attempts"), [(False, 1), (True, 3)])
async def test_attempt_time_outs_are_retried_only_for_idempotent_tools(
    idempotent: bool, attempts: int
) -> None:
    resilience, _, _ = make(retry_max_attempts=3, retry_backoff_s=0, retry_jitter_s=0)
    spec = ToolResilience(idempotent=idempotent, attempt_timeout_s=0.02)
    calls: list[int] = []

    async def hang() -> str:
        calls.append(1)
        await asyncio.sleep(5)
        return "late"

    with pytest.raises(CallFailed) as caught:
        await resilience.call("slow", spec, hang, 5.0)
    assert len(calls) == attempts
    assert isinstance(caught.value.cause, AttemptTimedOut)
    assert caught.value.cause.limit_s == 0.02


async def test_a_tools_own_timeout_error_is_an_ordinary_failure() -> None:
    resilience, _, _ = make(retry_max_attempts=3)
    calls, run = failing(100, TimeoutError("upstream said so"))
    with pytest.raises(CallFailed) as caught:
        await resilience.call("t", ToolResilience(idempotent=True), run, 5.0)
    assert calls == [1]
    assert not isinstance(caught.value.cause, AttemptTimedOut)


async def test_an_open_breaker_stops_the_retries() -> None:
    resilience, _, observer = make(
        retry_max_attempts=5, breaker_failure_threshold=2, retry_jitter_s=0
    )
    calls, run = failing(100, RetryableToolError("down"))
    with pytest.raises(CallFailed) as caught:
        await resilience.call("flaky", SPEC, run, 10.0)
    assert calls == [1, 2]  # the second failure opened it: a third attempt would fail fast
    assert caught.value.attempts == 2
    with pytest.raises(CircuitOpen, match="circuit open for flaky until"):
        await resilience.call("flaky", SPEC, run, 10.0)
    assert calls == [1, 2]
    assert observer.rejections == ["flaky"]


async def test_breaker_disabled() -> None:
    resilience, _, _ = make(
        retry_max_attempts=1, breaker_failure_threshold=1, breaker_enabled=False
    )
    calls, run = failing(100, RetryableToolError("down"))
    for _ in range(3):
        with pytest.raises(CallFailed):
            await resilience.call("flaky", SPEC, run, 10.0)
    assert calls == [1, 2, 3]
    assert resilience.breakers() == {}


def test_settings_refuse_a_cap_below_the_first_wait() -> None:
    with pytest.raises(ValidationError, match="retry_max_backoff_s"):
        ResilienceSettings(retry_backoff_s=3, retry_max_backoff_s=1)
