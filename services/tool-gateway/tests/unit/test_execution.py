import asyncio
import time
from typing import Any

import pytest

from keel_contracts.errors import Unavailable
from keel_tool_gateway.adapters.tools import builtin_registry
from keel_tool_gateway.domain.execution import (
    NO_APPROVAL_SERVICE,
    POLICY_UNAVAILABLE,
    ExecutionService,
)
from keel_tool_gateway.domain.ledger import ResultLedger
from keel_tool_gateway.domain.models import Decision, PolicyVerdict, RequestContext
from keel_tool_gateway.domain.registry import Tool, ToolError
from keel_tool_gateway.testing import CountingInput, CountingTool, StaticPolicy

CTX = RequestContext(session_id="s1", agent_id="a1", agent_profile="default")


def make(
    counter: CountingTool | None = None,
    policy: StaticPolicy | None = None,
    *,
    ledger_size: int = 100,
    max_output_chars: int = 8000,
    extra: list[Tool[Any]] | None = None,
) -> tuple[ExecutionService, CountingTool, StaticPolicy]:
    counter = counter or CountingTool()
    policy = policy or StaticPolicy("allow")
    registry = builtin_registry()
    registry.register(counter.tool)
    for tool in extra or []:
        registry.register(tool)
    service = ExecutionService(
        registry, policy, ResultLedger(ledger_size), max_output_chars=max_output_chars
    )
    return service, counter, policy


async def test_allowed_call_runs_and_returns_output() -> None:
    service, counter, policy = make()
    result = await service.execute(CTX, "counter", '{"n": 3}', "s1:0:0")
    assert result.status == "ok"
    assert result.output == "counted"
    assert result.error == ""
    assert result.rule_id == "static-allow"
    assert result.untrusted is True
    assert result.replayed is False
    assert result.duration_ms > 0
    assert counter.runs == 1
    assert counter.seen[0].n == 3
    assert policy.calls[0].ctx == CTX
    assert policy.calls[0].tool == "counter"
    assert policy.calls[0].arguments == {"n": 3}


async def test_builtin_calculator_runs_through_the_service() -> None:
    service, _, _ = make()
    result = await service.execute(CTX, "calculator", '{"expression": "(17 * 23) + 4"}')
    assert (result.status, result.output) == ("ok", "395")


@pytest.mark.parametrize(
    ("decision", "status"), [("deny", "denied"), ("require_approval", "needs_approval")]
)
async def test_deny_and_approval_never_run_the_tool(decision: Decision, status: str) -> None:
    verdict = PolicyVerdict(decision=decision, rule_id="r-7", reason="because")
    service, counter, _ = make(policy=StaticPolicy(per_tool={"counter": verdict}))
    result = await service.execute(CTX, "counter", "{}", "k1", approval_id="")
    assert result.status == status
    assert result.rule_id == "r-7"
    assert result.output == ""
    assert "because" in result.error
    assert "r-7" in result.error
    assert counter.runs == 0


async def test_approval_id_without_an_approval_service_unlocks_nothing() -> None:
    service, counter, policy = make(policy=StaticPolicy("require_approval"))
    result = await service.execute(CTX, "counter", "{}", "k1", approval_id="appr-1")
    assert (result.status, result.error) == ("error", NO_APPROVAL_SERVICE)
    assert result.approval_outcome == "unavailable"
    assert counter.runs == 0
    assert policy.calls == []


async def test_policy_down_fails_closed() -> None:
    policy = StaticPolicy("allow", error=Unavailable("UNAVAILABLE: connection refused"))
    service, counter, _ = make(policy=policy)
    result = await service.execute(CTX, "counter", "{}", "k1")
    assert result.status == "error"
    assert result.error == POLICY_UNAVAILABLE
    assert counter.runs == 0
    # Not remembered: once policy is back, the same key is evaluated and runs.
    policy.error = None
    again = await service.execute(CTX, "counter", "{}", "k1")
    assert again.status == "ok"
    assert again.replayed is False
    assert counter.runs == 1


async def test_policy_timeout_fails_closed() -> None:
    service, counter, _ = make(policy=StaticPolicy(error=TimeoutError()))
    result = await service.execute(CTX, "counter", "{}")
    assert (result.status, result.error, counter.runs) == ("error", POLICY_UNAVAILABLE, 0)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "arguments are not valid JSON: Expecting property name"),
        ("[1, 2]", "arguments must be a JSON object, not an array"),
        ('"x"', "arguments must be a JSON object, not a string"),
        ("[" * 100_000, "arguments are not valid JSON"),
    ],
)
async def test_bad_json_is_an_error_and_asks_nobody(arguments: str, message: str) -> None:
    service, counter, policy = make()
    result = await service.execute(CTX, "counter", arguments)
    assert result.status == "error"
    assert message in result.error
    assert counter.runs == 0
    assert policy.calls == []


async def test_empty_arguments_mean_none() -> None:
    service, counter, _ = make()
    assert (await service.execute(CTX, "counter", "")).status == "ok"
    assert counter.seen[0] == CountingInput()


async def test_unknown_tool_is_an_error_and_asks_nobody() -> None:
    service, _, policy = make()
    result = await service.execute(CTX, "rm_rf", "{}")
    assert result.status == "error"
    assert result.error == "unknown tool 'rm_rf'"
    assert policy.calls == []


async def test_validation_error_carries_pydantic_message_and_does_not_run() -> None:
    service, counter, _ = make()
    result = await service.execute(CTX, "counter", '{"n": -1, "zzz": 1}')
    assert result.status == "error"
    assert result.error == (
        "invalid arguments for counter: n: Input should be greater than or equal to 0; "
        "zzz: Extra inputs are not permitted"
    )
    # Refused before policy was asked: no rule decided it.
    assert result.rule_id == ""
    assert counter.runs == 0


@pytest.mark.parametrize("decision", ["require_approval", "allow", "deny"])
async def test_invalid_call_is_refused_before_policy_and_never_needs_approval(
    decision: Decision,
) -> None:
    """Issue 13 item 5: validation comes before policy and approval, so a call that can never
    run is never answered ``needs_approval`` (which is what makes the agent loop ask a person)."""
    service, counter, policy = make(policy=StaticPolicy(decision))
    result = await service.execute(CTX, "counter", '{"n": 1000}', "s1:0:0")
    assert result.status == "error"
    assert result.error.startswith("invalid arguments for counter: n: Input should be less")
    assert policy.calls == []
    assert counter.runs == 0
    # Final: the same key is answered from the ledger, still without asking anyone.
    again = await service.execute(CTX, "counter", '{"n": 1000}', "s1:0:0")
    assert (again.status, again.replayed, policy.calls) == ("error", True, [])


async def test_calculator_validation_of_long_input() -> None:
    service, _, _ = make()
    result = await service.execute(CTX, "calculator", '{"expression": "%s"}' % ("1" * 501))
    assert result.status == "error"
    assert result.error.startswith("invalid arguments for calculator: expression: String should")


async def test_async_tool_timeout() -> None:
    service, counter, _ = make(CountingTool(sleep_s=5, timeout_s=0.05))
    started = time.perf_counter()
    result = await service.execute(CTX, "counter", "{}")
    assert time.perf_counter() - started < 2
    assert (result.status, result.error) == ("error", "counter timed out after 0.05s")
    assert counter.runs == 1


async def test_sync_tool_runs_off_the_loop_and_times_out() -> None:
    release = asyncio.Event()

    def slow(_: CountingInput) -> str:
        time.sleep(0.3)
        return "late"

    sync_tool = Tool(
        name="slow", description="", input_model=CountingInput, run=slow, timeout_s=0.05
    )
    service, _, _ = make(extra=[sync_tool])
    # The loop stays free while the thread sleeps: this timer fires before the time-out.
    asyncio.get_running_loop().call_later(0.01, release.set)
    result = await service.execute(CTX, "slow", "{}")
    assert release.is_set()
    assert (result.status, result.error) == ("error", "slow timed out after 0.05s")
    await asyncio.sleep(0.3)  # let the abandoned thread finish before the test ends


async def test_sync_tool_result() -> None:
    def double(args: CountingInput) -> dict[str, int]:
        return {"double": args.n * 2}

    tool = Tool(name="double", description="", input_model=CountingInput, run=double)
    service, _, _ = make(extra=[tool])
    result = await service.execute(CTX, "double", '{"n": 21}')
    assert (result.status, result.output) == ("ok", '{"double": 42}')


async def test_tool_exception_is_data() -> None:
    service, counter, _ = make(CountingTool(error=KeyError("missing")))
    result = await service.execute(CTX, "counter", "{}")
    assert (result.status, result.error) == ("error", "counter failed: KeyError: 'missing'")
    assert counter.runs == 1


async def test_tool_error_message_is_kept_as_written() -> None:
    service, _, _ = make(CountingTool(error=ToolError("the disk is full")))
    result = await service.execute(CTX, "counter", "{}")
    assert result.error == "counter failed: the disk is full"


async def test_calculator_refusal_is_an_error_result() -> None:
    service, _, _ = make()
    result = await service.execute(CTX, "calculator", '{"expression": "__import__(1)"}')
    assert result.status == "error"
    assert result.error.startswith("calculator failed: unknown function '__import__'")


async def test_output_is_capped_with_a_marker() -> None:
    service, _, _ = make(CountingTool(result="x" * 20_000), max_output_chars=1000)
    result = await service.execute(CTX, "counter", "{}")
    assert result.status == "ok"
    assert result.truncated is True
    assert len(result.output) <= 1000
    kept = result.output.rstrip("]").split("\n")[0]
    assert set(kept) == {"x"}
    assert len(kept) > 900
    marker = f"\n[truncated: showing the first {len(kept)} of 20000 characters]"
    assert result.output == kept + marker


async def test_short_output_is_not_marked() -> None:
    service, _, _ = make(CountingTool(result="x" * 1000), max_output_chars=1000)
    result = await service.execute(CTX, "counter", "{}")
    assert (result.output, result.truncated) == ("x" * 1000, False)


async def test_non_text_output_is_json() -> None:
    service, _, _ = make(CountingTool(result={"b": [1, 2], "a": None}))
    assert (await service.execute(CTX, "counter", "{}")).output == '{"b": [1, 2], "a": null}'


async def test_replay_returns_stored_result_without_policy_or_run() -> None:
    service, counter, policy = make()
    first = await service.execute(CTX, "counter", '{"n": 1}', "s1:1:0")
    counter.result = "different now"
    second = await service.execute(CTX, "counter", '{ "n" : 1 }', "s1:1:0")
    assert counter.runs == 1
    assert len(policy.calls) == 1
    assert second.replayed is True
    assert second.model_copy(update={"replayed": False}) == first


@pytest.mark.parametrize("decision", ["deny", "allow"])
async def test_denied_and_failed_results_replay_too(decision: Decision) -> None:
    counter = CountingTool(error=RuntimeError("boom"))
    service, _, policy = make(counter, StaticPolicy(decision))
    first = await service.execute(CTX, "counter", "{}", "k")
    second = await service.execute(CTX, "counter", "{}", "k")
    assert first.status in ("denied", "error")
    assert second.status == first.status
    assert second.replayed is True
    assert len(policy.calls) == 1


async def test_needs_approval_is_not_remembered() -> None:
    service, _, policy = make(policy=StaticPolicy("require_approval"))
    await service.execute(CTX, "counter", "{}", "k")
    again = await service.execute(CTX, "counter", "{}", "k")
    assert again.replayed is False
    assert len(policy.calls) == 2


async def test_key_reused_for_another_call_is_refused() -> None:
    service, counter, _ = make()
    await service.execute(CTX, "counter", '{"n": 1}', "k")
    other = await service.execute(CTX, "counter", '{"n": 2}', "k")
    assert other.status == "error"
    assert "was used for a different call" in other.error
    assert counter.runs == 1


async def test_empty_key_means_no_ledger() -> None:
    service, counter, _ = make()
    await service.execute(CTX, "counter", "{}", "")
    await service.execute(CTX, "counter", "{}", "")
    assert counter.runs == 2


async def test_concurrent_duplicates_run_once() -> None:
    service, counter, policy = make(CountingTool(sleep_s=0.05))
    results = await asyncio.gather(
        *(service.execute(CTX, "counter", "{}", "same") for _ in range(5))
    )
    assert counter.runs == 1
    assert len(policy.calls) == 1
    assert [r.status for r in results] == ["ok"] * 5
    assert sum(r.replayed for r in results) == 4


async def test_ledger_is_bounded_lru() -> None:
    service, counter, _ = make(ledger_size=2)
    for key in ("a", "b", "a", "c"):  # "a" is used again, so "b" is the oldest when "c" comes
        await service.execute(CTX, "counter", "{}", key)
    assert counter.runs == 3
    assert (await service.execute(CTX, "counter", "{}", "a")).replayed is True
    assert (await service.execute(CTX, "counter", "{}", "b")).replayed is False
