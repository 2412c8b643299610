"""Two replicas' limiters sharing one spend topic on the real broker: the second refuses
what the first already let through."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from keel_contracts.topics import TopicSpec
from keel_core.bus import EventProducer, ensure_topics
from keel_core.bus.follower import TopicFollower
from keel_core.ratelimit import Limit, RateLimiter, RateLimitSettings, SpendSharer
from keel_core.settings import KafkaSettings
from keel_core.testing import FakeClock

pytestmark = pytest.mark.kafka


@pytest.fixture
async def producer(kafka: KafkaSettings) -> AsyncIterator[EventProducer]:
    p = EventProducer(kafka, "test")
    await p.start()
    yield p
    await p.stop()


async def test_the_second_replica_sees_the_first_replicas_spend(
    kafka: KafkaSettings, producer: EventProducer
) -> None:
    topic = f"test.ratelimit.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka, [TopicSpec(topic, retention_ms=3600 * 1000)])
    clock = FakeClock()  # frozen: no refill, so the only change is the other's spend
    settings = RateLimitSettings(limits={"submit": Limit(rate=1, burst=5)}, shared=True)
    first, second = RateLimiter(settings, clock), RateLimiter(settings, clock)
    followers = [TopicFollower(kafka, topic, f"rl-{n}") for n in "ab"]
    sharers = [
        SpendSharer(limiter, producer, follower, "svc", replica, interval_s=3600, topic=topic)
        for limiter, follower, replica in zip((first, second), followers, "ab", strict=True)
    ]
    for sharer in sharers:
        await sharer.start()
    try:
        for _ in range(4):
            assert first.check("submit", "acme") is None
        await sharers[0].publish()  # what the timer does every interval
        async with asyncio.timeout(15):
            while second.level("submit", "acme") > 1.0:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert second.check("submit", "acme") is None
        refusal = second.check("submit", "acme")
        assert refusal is not None
        assert refusal.kind == "submit"
    finally:
        for sharer in sharers:
            await sharer.stop()
        for follower in followers:
            await follower.stop()
