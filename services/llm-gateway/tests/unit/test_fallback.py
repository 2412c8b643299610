"""Fallback along the chain, per-provider breakers, time-outs, and no fallback on bad input."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from keel_contracts.errors import DeadlineExceeded, InvalidArgument, Unavailable
from keel_core.resilience.breaker import BreakerState, CircuitBreaker
from keel_core.testing import FakeClock
from keel_llm_gateway.domain.models import ChatMessage, CompletionRequest, TextDelta
from keel_llm_gateway.domain.routing import Complexity, Router, Target
from keel_llm_gateway.metrics import LLMMetrics
from keel_llm_gateway.testing import FakeProvider
from keel_llm_gateway.usecases.fallback import AllTargetsFailed, ChainCaller
from keel_llm_gateway.usecases.gateway import Gateway

ASK = CompletionRequest(messages=(ChatMessage(role="user", content="hi"),))


@dataclass
class Setup:
    gateway: Gateway
    registry: CollectorRegistry
    breakers: dict[str, CircuitBreaker]

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def build(
    *providers: FakeProvider, clock: FakeClock | None = None, timeout_s: float | None = None
) -> Setup:
    registry = CollectorRegistry()
    metrics = LLMMetrics(registry)
    breakers = {
        p.name: CircuitBreaker(
            p.name,
            failure_threshold=2,
            reset_timeout_s=30,
            observer=metrics,
            clock=clock or FakeClock(0.0),
        )
        for p in providers
    }
    chain = [Target(provider=p.name, model=f"{p.name}-model") for p in providers]
    gateway = Gateway(
        router=Router(dict.fromkeys(Complexity, chain)),
        chain=ChainCaller({p.name: p for p in providers}, breakers, metrics, timeout_s),
        prices={},
        observer=metrics,
    )
    return Setup(gateway, registry, breakers)


async def test_falls_back_to_the_next_provider_on_unavailable() -> None:
    primary = FakeProvider("primary", [Unavailable("HTTP 503")])
    backup = FakeProvider("backup", ["from backup"])
    setup = build(primary, backup)
    completion = await setup.gateway.complete(ASK)
    assert completion.message.content == "from backup"
    assert completion.provider == "backup"
    assert backup.requests[0].model == "backup-model"  # each target asks for its own model
    assert setup.sample("keel_llm_fallbacks_total", provider="primary", reason="Unavailable") == 1
    assert setup.sample("keel_llm_errors_total", provider="primary", error="Unavailable") == 1


async def test_never_falls_back_on_invalid_argument_nor_counts_it_against_the_breaker() -> None:
    primary = FakeProvider("primary", [InvalidArgument("prompt too long")])
    backup = FakeProvider("backup", ["never"])
    setup = build(primary, backup)
    for _ in range(3):
        with pytest.raises(InvalidArgument, match="prompt too long"):
            await setup.gateway.complete(ASK)
    assert backup.requests == []
    assert setup.breakers["primary"].state is BreakerState.CLOSED


async def test_a_slow_provider_times_out_and_the_next_answers() -> None:
    slow = FakeProvider("slow", ["late"], delay_s=5)
    fast = FakeProvider("fast", ["on time"])
    setup = build(slow, fast, timeout_s=0.05)
    completion = await setup.gateway.complete(ASK)
    slow.release()
    assert completion.message.content == "on time"
    assert setup.sample("keel_llm_fallbacks_total", provider="slow", reason="DeadlineExceeded") == 1


async def test_all_failing_lists_every_reason() -> None:
    setup = build(
        FakeProvider("a", [Unavailable("a is down")]),
        FakeProvider("b", [DeadlineExceeded("b is slow")]),
    )
    with pytest.raises(AllTargetsFailed) as caught:
        await setup.gateway.complete(ASK)
    assert isinstance(caught.value, Unavailable)
    assert "a/a-model: a is down" in str(caught.value)
    assert "b/b-model: b is slow" in str(caught.value)


async def test_breaker_opens_skips_the_provider_then_half_opens_and_closes() -> None:
    clock = FakeClock(0.0)
    flaky = FakeProvider("flaky", [Unavailable("down"), Unavailable("down"), "back"])
    backup = FakeProvider("backup", ["backup answer"])
    setup = build(flaky, backup, clock=clock)
    for _ in range(2):
        assert (await setup.gateway.complete(ASK)).provider == "backup"
    assert setup.breakers["flaky"].state is BreakerState.OPEN
    assert setup.sample("keel_llm_breaker_state", provider="flaky") == 1

    assert (await setup.gateway.complete(ASK)).provider == "backup"
    assert len(flaky.requests) == 2  # open: not even tried
    assert setup.sample("keel_llm_breaker_rejections_total", provider="flaky") == 1
    assert setup.sample("keel_llm_fallbacks_total", provider="flaky", reason="CircuitOpen") == 1

    clock.advance(30)
    assert setup.breakers["flaky"].state is BreakerState.HALF_OPEN
    assert (await setup.gateway.complete(ASK)).provider == "flaky"  # the trial call succeeds
    assert setup.breakers["flaky"].state is BreakerState.CLOSED
    assert setup.sample("keel_llm_breaker_state", provider="flaky") == 0


async def test_stream_falls_back_before_the_first_token() -> None:
    setup = build(FakeProvider("a", [Unavailable("down")]), FakeProvider("b", ["hello there"]))
    events = [e async for e in setup.gateway.stream(ASK)]
    assert "".join(e.content for e in events if isinstance(e, TextDelta)) == "hello there"
    assert events[-1].provider == "b"  # type: ignore[union-attr]


async def test_stream_does_not_fall_back_after_a_token_went_out() -> None:
    broken = FakeProvider("a", ["one two three four"], fail_mid_stream=Unavailable("cut"))
    backup = FakeProvider("b", ["never"])
    setup = build(broken, backup)
    seen: list[str] = []

    async def consume() -> None:
        async for event in setup.gateway.stream(ASK):
            if isinstance(event, TextDelta):
                seen.append(event.content)

    with pytest.raises(Unavailable, match="cut"):
        await consume()
    assert seen == ["one "]
    assert backup.requests == []
