"""The crash window between a tool's effect and its recorded result. A gateway that dies there
leaves the key with an intent and no result; what a retry (on a restarted gateway, or another
replica) does then depends on what the tool declared a second run would do."""

from __future__ import annotations

import asyncio

import pytest

from keel_tool_gateway.domain.execution import OUTCOME_UNKNOWN, ExecutionService
from keel_tool_gateway.domain.ledger import ResultLedger, StartedEntry
from keel_tool_gateway.domain.models import RequestContext
from keel_tool_gateway.domain.registry import Effects, ToolRegistry
from keel_tool_gateway.domain.resilience.errors import CircuitOpen
from keel_tool_gateway.errors import RunInProgress
from keel_tool_gateway.testing import CountingTool, StaticPolicy

CTX = RequestContext(session_id="s1")
KEY = "s1:3:0"
ARGS = '{"n": 1}'


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def gateway(
    ledger: ResultLedger, effects: Effects, clock: Clock, *, timeout_s: float = 5.0
) -> tuple[ExecutionService, CountingTool]:
    counter = CountingTool(effects=effects, timeout_s=timeout_s)
    registry = ToolRegistry()
    registry.register(counter.tool)
    service = ExecutionService(
        registry, StaticPolicy("allow"), ledger, wall_clock=clock, intent_grace_s=2.0
    )
    return service, counter


class DiesAfterTheEffect:
    """The shared ledger as a gateway sees it that dies between the effect and the result:
    reads and the intent go through, the result's write never happens."""

    def __init__(self, ledger: ResultLedger) -> None:
        self.get = ledger.get
        self.started = ledger.started
        self.begin = ledger.begin
        self.abandon = ledger.abandon

    async def put(self, *args: object, **kwargs: object) -> None:
        await asyncio.Event().wait()


async def crashed_mid_run(ledger: ResultLedger, clock: Clock) -> CountingTool:
    """Runs the call on a gateway that dies after the effect; returns its tool."""
    counter = CountingTool(effects="at_most_once", timeout_s=5.0)
    registry = ToolRegistry()
    registry.register(counter.tool)
    dying = ExecutionService(
        registry,
        StaticPolicy("allow"),
        DiesAfterTheEffect(ledger),
        wall_clock=clock,
        intent_grace_s=2.0,
    )
    call = asyncio.create_task(dying.execute(CTX, "counter", ARGS, KEY))
    while counter.runs == 0:  # noqa: ASYNC110 - the tool has no event to await
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    call.cancel()
    assert (counter.runs, ledger.get(KEY)) == (1, None)
    return counter


async def test_the_intent_is_recorded_before_the_run_and_names_its_deadline() -> None:
    clock, ledger = Clock(), ResultLedger()
    await crashed_mid_run(ledger, clock)
    started = ledger.started(KEY)
    assert started is not None
    assert started.tool == "counter"
    assert started.deadline == clock.now + 5.0 + 2.0  # the tool's time-out plus the grace


async def test_a_retry_before_the_deadline_is_told_to_wait_and_nothing_runs() -> None:
    clock, ledger = Clock(), ResultLedger()
    await crashed_mid_run(ledger, clock)
    retry, counter = gateway(ledger, "at_most_once", clock)
    clock.now += 6.9
    with pytest.raises(RunInProgress):
        await retry.execute(CTX, "counter", ARGS, KEY)
    assert counter.runs == 0


async def test_a_retry_after_the_deadline_is_answered_outcome_unknown_once_and_for_all() -> None:
    clock, ledger = Clock(), ResultLedger()
    await crashed_mid_run(ledger, clock)
    retry, counter = gateway(ledger, "at_most_once", clock)
    clock.now += 7.1
    unknown = await retry.execute(CTX, "counter", ARGS, KEY)
    assert (unknown.status, unknown.error) == ("error", OUTCOME_UNKNOWN)
    again = await retry.execute(CTX, "counter", ARGS, KEY)
    assert (again.error, again.replayed) == (OUTCOME_UNKNOWN, True)
    assert counter.runs == 0
    assert ledger.started(KEY) is None, "the outcome replaced the intent"


async def test_an_intent_of_another_call_under_the_key_is_refused() -> None:
    clock, ledger = Clock(), ResultLedger()
    await crashed_mid_run(ledger, clock)
    retry, counter = gateway(ledger, "at_most_once", clock)
    other = await retry.execute(CTX, "counter", '{"n": 2}', KEY)
    assert other.error == f"idempotency key {KEY!r} was used for a different call; nothing ran"
    assert counter.runs == 0


@pytest.mark.parametrize("effects", ["read_only", "idempotent"])
async def test_tools_safe_to_run_again_write_no_intent(effects: Effects) -> None:
    clock, ledger = Clock(), ResultLedger()
    service, counter = gateway(ledger, effects, clock)
    seen: list[StartedEntry | None] = []
    original = counter._run  # noqa: SLF001

    async def spy(args: object) -> object:
        seen.append(ledger.started(KEY))
        return await original(args)  # type: ignore[arg-type]

    object.__setattr__(counter, "_run", spy)
    registry = ToolRegistry()
    registry.register(counter.tool)
    service = ExecutionService(registry, StaticPolicy("allow"), ledger, wall_clock=clock)
    result = await service.execute(CTX, "counter", ARGS, KEY)
    assert (result.status, seen) == ("ok", [None])


async def test_a_call_without_a_key_writes_no_intent() -> None:
    clock, ledger = Clock(), ResultLedger()
    service, counter = gateway(ledger, "at_most_once", clock)
    result = await service.execute(CTX, "counter", ARGS)
    assert (result.status, counter.runs, len(ledger)) == ("ok", 1, 0)


async def test_a_call_its_breaker_refused_withdraws_its_intent_and_may_run_later() -> None:
    """Nothing ran when the breaker was open: the intent must not age into "outcome unknown"
    (nor hold the key as "in progress"), so the retry runs."""
    clock, ledger = Clock(), ResultLedger()
    service, counter = gateway(ledger, "at_most_once", clock)
    breaker_open = ExecutionService(
        service._registry,  # noqa: SLF001
        StaticPolicy("allow"),
        ledger,
        resilience=OpenBreaker(),
        wall_clock=clock,
    )
    refused = await breaker_open.execute(CTX, "counter", ARGS, KEY)
    assert refused.error.endswith("counter did not run")
    assert ledger.started(KEY) is None
    ran = await service.execute(CTX, "counter", ARGS, KEY)
    assert (ran.status, counter.runs) == ("ok", 1)


class OpenBreaker:
    async def call(self, tool: str, spec: object, run: object, timeout_s: float) -> object:
        raise CircuitOpen(tool, f"circuit open for {tool}")
