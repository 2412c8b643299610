"""Retries and breakers inside the gateway's execution path, under an injected failing
dependency: attempt counts, fast failure while open, what the ledger keeps, and the metrics."""

from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from keel_tool_gateway.adapters.resilience.runner import Resilience
from keel_tool_gateway.domain.execution import ExecutionService
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.domain.registry import ToolError, ToolRegistry
from keel_tool_gateway.domain.resilience.settings import ResilienceSettings
from keel_tool_gateway.domain.resilience.spec import ToolResilience
from keel_tool_gateway.metrics import ToolGatewayMetrics
from keel_tool_gateway.testing import FlakyLedger, StaticPolicy
from keel_tool_gateway.testing.resilience import FakeTime, FlakyDependency

CTX = RequestContext(session_id="s1", agent_id="a1")
SETTINGS = ResilienceSettings(
    retry_max_attempts=3,
    retry_backoff_s=0.1,
    retry_max_backoff_s=1,
    retry_jitter_s=0,
    breaker_failure_threshold=4,
    breaker_reset_timeout_s=30,
)


@dataclass
class Gateway:
    service: ExecutionService
    time: FakeTime
    ledger: FlakyLedger
    policy: StaticPolicy
    metrics: CollectorRegistry

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.get_sample_value(name, labels)


def make(*deps: FlakyDependency, policy: StaticPolicy | None = None) -> Gateway:
    registry = ToolRegistry()
    for dep in deps:
        registry.register(dep.tool)
    time, metrics = FakeTime(), CollectorRegistry()
    resilience = Resilience(
        SETTINGS,
        observer=ToolGatewayMetrics(metrics),
        clock=time.clock,
        wall_clock=time.clock,
        sleep=time.sleep,
    )
    ledger, policy = FlakyLedger(), policy or StaticPolicy("allow")
    service = ExecutionService(registry, policy, ledger, resilience=resilience)
    return Gateway(service, time, ledger, policy, metrics)


async def test_a_transient_failure_is_retried_and_only_the_final_result_is_recorded() -> None:
    dep = FlakyDependency(failures=2)
    gw = make(dep)
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert (result.status, result.output) == ("ok", "ok 3")
    assert dep.calls == 3
    assert gw.time.sleeps == [0.1, 0.2]
    assert gw.ledger.writes == 1
    assert len(gw.policy.calls) == 1  # decided once, retried after the decision
    replay = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert (replay.output, replay.replayed, dep.calls) == ("ok 3", True, 3)
    assert gw.sample("keel_tool_gateway_retries_total", tool="flaky") == 2
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="flaky") == 0


async def test_exhausted_retries_are_one_error_result() -> None:
    dep = FlakyDependency(always=True)
    gw = make(dep)
    result = await gw.service.execute(CTX, "flaky", "{}", "k1")
    assert (result.status, result.error) == (
        "error",
        "flaky failed after 3 attempts: backend unavailable",
    )
    assert gw.ledger.writes == 1
    assert gw.ledger.get("k1") is not None


async def test_a_tool_error_is_not_retried_and_does_not_trip_the_breaker() -> None:
    dep = FlakyDependency(always=True, error=ToolError("no such city"))
    gw = make(dep)
    for i in range(6):
        result = await gw.service.execute(CTX, "flaky", "{}", f"k{i}")
        assert result.error == "flaky failed: no such city"
    assert dep.calls == 6
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="flaky") == 0


async def test_breaker_opens_fails_fast_then_recovers_through_a_trial() -> None:
    dep = FlakyDependency(always=True)
    gw = make(dep)
    # 3 attempts, then 1 more: the 4th consecutive failure opens it and stops the retries.
    first = await gw.service.execute(CTX, "flaky", "{}", "k1")
    second = await gw.service.execute(CTX, "flaky", "{}", "k2")
    assert dep.calls == 4
    assert first.error == "flaky failed after 3 attempts: backend unavailable"
    assert second.error == "flaky failed: backend unavailable"
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="flaky") == 1

    # Open: fails fast, the tool does not run, and nothing is recorded for the key.
    gw.time.advance(10)
    fast = await gw.service.execute(CTX, "flaky", "{}", "k3")
    assert fast.status == "error"
    assert fast.error.startswith("circuit open for flaky until 2023-11-14T22:13:")
    assert fast.error.endswith("; flaky did not run")
    assert dep.calls == 4
    assert gw.ledger.get("k3") is None
    assert gw.sample("keel_tool_gateway_breaker_rejections_total", breaker="flaky") == 1

    # After the cool-down one trial goes through; the dependency is back: closed again, and
    # the key that failed fast now runs.
    dep.heal()
    gw.time.advance(20)
    again = await gw.service.execute(CTX, "flaky", "{}", "k3")
    assert (again.status, again.output) == ("ok", "ok 5")
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="flaky") == 0
    transitions = {
        state: gw.sample(
            "keel_tool_gateway_breaker_transitions_total", breaker="flaky", state=state
        )
        for state in ("open", "half_open", "closed")
    }
    assert transitions == {"open": 1, "half_open": 1, "closed": 1}


async def test_a_failed_trial_opens_it_again() -> None:
    dep = FlakyDependency(always=True)
    gw = make(dep)
    await gw.service.execute(CTX, "flaky", "{}")
    await gw.service.execute(CTX, "flaky", "{}")
    gw.time.advance(30)
    trial = await gw.service.execute(CTX, "flaky", "{}")
    assert trial.error == "flaky failed: backend unavailable"  # one trial, not retried
    assert dep.calls == 5
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="flaky") == 1
    assert (
        gw.sample("keel_tool_gateway_breaker_transitions_total", breaker="flaky", state="open") == 2
    )


async def test_tools_on_one_dependency_share_its_breaker() -> None:
    shared = ToolResilience(dependency="crm")
    read = FlakyDependency(name="crm_read", always=True, resilience=shared)
    write = FlakyDependency(name="crm_write", resilience=shared)
    gw = make(read, write)
    await gw.service.execute(CTX, "crm_read", "{}")
    await gw.service.execute(CTX, "crm_read", "{}")
    result = await gw.service.execute(CTX, "crm_write", "{}")
    assert result.error.startswith("circuit open for crm until")
    assert write.calls == 0
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="crm") == 1


async def test_a_denied_call_never_reaches_retries_or_breakers() -> None:
    dep = FlakyDependency(always=True)
    gw = make(dep, policy=StaticPolicy("deny"))
    for i in range(10):
        result = await gw.service.execute(CTX, "flaky", "{}", f"k{i}")
        assert result.status == "denied"
    assert dep.calls == 0
    assert gw.time.sleeps == []
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="flaky") is None


async def test_invalid_arguments_never_reach_retries_or_breakers() -> None:
    dep = FlakyDependency(always=True)
    gw = make(dep)
    result = await gw.service.execute(CTX, "flaky", '{"unexpected": 1}')
    assert result.error.startswith("invalid arguments for flaky")
    assert dep.calls == 0
    assert gw.sample("keel_tool_gateway_breaker_state", breaker="flaky") is None


async def test_a_hanging_dependency_times_out_and_counts_against_the_breaker() -> None:
    dep = FlakyDependency(always=True, hang_s=5, timeout_s=0.02)
    gw = make(dep)
    results = [await gw.service.execute(CTX, "flaky", "{}") for _ in range(5)]
    assert [r.error for r in results[:4]] == ["flaky timed out after 0.02s"] * 4
    assert results[4].error.startswith("circuit open for flaky")
    assert dep.calls == 4
