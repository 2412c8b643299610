"""Token-bucket arithmetic, keyed limits, retry-after and the tasks delay, on a fake clock."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from keel_contracts.events import Envelope, RateLimitSpent, TaskCancelRequested, TaskSubmitted
from keel_core.grpc.ratelimit import NO_KEY, key_of
from keel_core.ratelimit import (
    Limit,
    RateLimiter,
    RateLimitSettings,
    SpendSharer,
    TokenBucket,
    admit_task,
    limit_tasks,
    rule,
)
from keel_core.testing import FakeClock


def test_a_bucket_lets_the_burst_through_then_says_when_the_next_fits() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2.0, burst=3.0, clock=clock)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)  # one token at 2 tokens a second
    clock.advance(0.25)
    assert bucket.take() == pytest.approx(0.25)  # half a token refilled, half still missing
    clock.advance(0.25)
    assert bucket.take() == 0.0
    clock.advance(60)
    assert bucket.level == pytest.approx(3.0)  # refills up to the burst, never past it


def test_a_cost_above_the_burst_never_fits() -> None:
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=FakeClock())
    assert math.isinf(bucket.take(3.0))
    assert bucket.level == pytest.approx(2.0)  # and takes nothing


def test_a_debit_can_go_below_zero_but_not_below_minus_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1.0, burst=2.0, clock=clock)
    bucket.debit(3.0)
    assert bucket.level == pytest.approx(-1.0)
    assert bucket.take() == pytest.approx(2.0)  # back to 1 token takes two seconds
    bucket.debit(100.0)
    assert bucket.level == pytest.approx(-2.0)


def test_buckets_are_per_key_with_overrides_and_unlimited_kinds() -> None:
    clock = FakeClock()
    settings = RateLimitSettings(
        limits={"tool": Limit(rate=1, burst=1), "tool:calculator": Limit(rate=1, burst=3)}
    )
    limiter = RateLimiter(settings, clock)
    assert limiter.check("tool", "search") is None
    refusal = limiter.check("tool", "search")
    assert refusal is not None
    assert (refusal.kind, refusal.key, refusal.retry_after) == ("tool", "search", 1)
    assert "retry after 1 s" in refusal.message()
    assert limiter.check("tool", "fetch") is None  # another key, its own bucket
    assert [limiter.check("tool", "calculator") for _ in range(3)] == [None, None, None]
    assert limiter.check("model", "any") is None  # no limit for the kind
    assert limiter.drain() == {("tool", "search"): 1.0, ("tool", "fetch"): 1.0,
                               ("tool", "calculator"): 3.0}  # fmt: skip
    assert limiter.drain() == {}


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimitSettings(limits={"calls": Limit(rate=0.1, burst=1)}), clock)
    assert limiter.check("calls", "acme") is None
    refusal = limiter.check("calls", "acme")
    assert refusal is not None
    assert refusal.retry_after == 10
    clock.advance(9.5)
    later = limiter.check("calls", "acme")
    assert later is not None
    assert later.retry_after == 1  # 0.5 s rounds up to a whole second


def test_a_key_is_the_first_non_empty_field_path() -> None:
    class Ctx:
        tenant = "acme"

    class Request:
        tenant = ""
        context = Ctx()
        model = ""

    assert key_of(Request(), "tenant|context.tenant") == "acme"
    assert key_of(Request(), "model") == NO_KEY
    assert key_of(Request(), "call.name") == NO_KEY


def test_settings_read_from_json_refuse_a_burst_below_one_call() -> None:
    parsed = RateLimitSettings.model_validate_json(
        '{"limits": {"tool:send_email": {"rate": 0.1, "burst": 1}}, "shared": true}'
    )
    assert parsed.limit_of("tool", "send_email") == Limit(rate=0.1, burst=1)
    assert parsed.limit_of("tool", "search") is None
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        RateLimitSettings.model_validate({"limits": {"tool": {"rate": 1, "burst": 0.5}}})
    with pytest.raises(ValidationError, match="Extra inputs"):
        RateLimitSettings.model_validate({"limits": {}, "share": True})  # a typo is refused


def test_default_rules_apply_only_when_the_operator_named_none() -> None:
    defaults = [rule("/svc/", "calls")]
    assert RateLimitSettings().with_default_rules(defaults).grpc == defaults
    own = RateLimitSettings(grpc=[rule("/svc/Run", "runs")])
    assert own.with_default_rules(defaults).grpc == own.grpc
    assert not RateLimitSettings().enabled


def _task(tenant: str) -> Envelope:
    return Envelope.wrap(TaskSubmitted(goal="g", tenant=tenant), source="t", session_id="s")


async def test_a_task_over_its_tenants_limit_is_delayed_not_refused() -> None:
    clock = FakeClock()
    limiter = RateLimiter(RateLimitSettings(limits={"tasks": Limit(rate=0.5, burst=1)}), clock)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    assert await admit_task(limiter, _task("acme"), sleep) == 0.0
    assert await admit_task(limiter, _task("acme"), sleep) == pytest.approx(2.0)
    assert slept == [pytest.approx(2.0)]
    assert await admit_task(limiter, _task("other"), sleep) == 0.0  # its own bucket
    cancel = Envelope.wrap(TaskCancelRequested(reason="x"), source="t", session_id="s")
    assert await admit_task(limiter, cancel, sleep) == 0.0  # continues admitted work


async def test_limit_tasks_wraps_only_when_a_tasks_limit_is_set() -> None:
    async def handler(envelope: Envelope) -> None:
        handled.append(envelope.id)

    handled: list[str] = []
    off = RateLimiter(RateLimitSettings(limits={"calls": Limit(rate=1, burst=1)}))
    assert limit_tasks(off, handler) is handler
    on = RateLimiter(RateLimitSettings(limits={"tasks:acme": Limit(rate=1, burst=1)}))
    wrapped = limit_tasks(on, handler)
    assert wrapped is not handler
    task = _task("acme")
    await wrapped(task)
    assert handled == [task.id]
    assert on.level("tasks", "acme") == pytest.approx(0.0, abs=1e-3)


class _Publisher:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, Envelope, str | None]] = []
        self.fail = fail

    async def publish(self, topic: str, envelope: Envelope, key: str | None = None) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((topic, envelope, key))


def _sharer(limiter: RateLimiter, publisher: _Publisher, replica: str) -> SpendSharer:
    return SpendSharer(limiter, publisher, follower=None, service="svc", replica=replica)  # type: ignore[arg-type]


async def test_a_replica_debits_the_spend_another_published_and_skips_its_own() -> None:
    clock = FakeClock()
    settings = RateLimitSettings(limits={"submit": Limit(rate=1, burst=5)}, shared=True)
    first, second = RateLimiter(settings, clock), RateLimiter(settings, clock)
    publisher = _Publisher()
    for _ in range(4):
        assert first.check("submit", "acme") is None
    await _sharer(first, publisher, "a").publish()
    [(topic, envelope, key)] = publisher.sent
    assert (topic, key) == ("keel.ratelimit.spend", "a")
    assert envelope.parse(RateLimitSpent).spends[0].tokens == 4
    await _sharer(first, _Publisher(), "a").apply(envelope)  # its own: not counted twice
    assert first.level("submit", "acme") == pytest.approx(1.0)
    await _sharer(second, _Publisher(), "b").apply(envelope)
    assert second.level("submit", "acme") == pytest.approx(1.0)
    assert second.check("submit", "acme") is None
    assert second.check("submit", "acme") is not None


async def test_spend_a_refused_publish_could_not_send_goes_with_the_next() -> None:
    limiter = RateLimiter(RateLimitSettings(limits={"tool": Limit(rate=1, burst=5)}))
    limiter.check("tool", "x")
    with pytest.raises(ConnectionError):
        await _sharer(limiter, _Publisher(fail=True), "a").publish()
    limiter.check("tool", "x")
    assert limiter.drain() == {("tool", "x"): 2.0}


async def test_another_services_spend_is_not_debited() -> None:
    settings = RateLimitSettings(limits={"tool": Limit(rate=1, burst=5)})
    theirs = RateLimiter(settings)
    theirs.check("tool", "x")
    publisher = _Publisher()
    await SpendSharer(theirs, publisher, None, "other-svc", "z").publish()  # type: ignore[arg-type]
    mine = RateLimiter(settings)
    await _sharer(mine, _Publisher(), "a").apply(publisher.sent[0][1])
    assert mine.level("tool", "x") == pytest.approx(5.0)
