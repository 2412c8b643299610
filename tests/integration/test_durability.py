"""Crashes and restarts: nothing a session did is lost or done twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid

import pytest

from keel_cli.follow import SessionFollower
from keel_cli.tasks import publish_task
from keel_clients import AgentClient, ApprovalClient, CallOptions, ToolClient, open_channel
from keel_contracts.chat import RequestContext, ToolCall
from keel_contracts.errors import KeelError, Unavailable
from keel_contracts.events import TaskCompleted, TaskFailed, TaskSubmitted
from keel_contracts.tools import ToolOutcome
from keel_core.settings import KafkaSettings
from keel_tool_gateway.adapters.tools.count import read_count
from keel_tool_gateway.domain.execution import OUTCOME_UNKNOWN
from tests.integration.chaos import Watcher, own_stack, restart

pytestmark = pytest.mark.stack


async def test_kill_9_mid_session_resumes_and_no_tool_call_runs_twice() -> None:
    name = f"kill-{uuid.uuid4().hex[:8]}"
    async with own_stack() as (stack, counts, kafka):
        async with SessionFollower(kafka, start="end") as follower:
            session_id = await publish_task(
                kafka, TaskSubmitted(goal=f"count 6 times slowly: {name}", max_iterations=10)
            )
            watcher = Watcher(follower, session_id)
            await watcher.until("tool_result", 2)
            stack.kill("agent-loop")
            killed_at = asyncio.get_running_loop().time()
            await restart(stack, "agent-loop")
            result = await watcher.finished()
            watcher.stop()
        done = result.parse(TaskCompleted)
        assert done.answer == f"counted {name} 6 times; the last count was 6"
        assert read_count(counts / f"{name}.count") == 6
        assert watcher.progress("resumed"), "the session resumed from a checkpoint"
        print(f"recovered {asyncio.get_running_loop().time() - killed_at:.1f}s after kill -9")


async def test_a_session_waiting_for_approval_survives_a_restart() -> None:
    async with own_stack() as (stack, _counts, kafka):
        async with SessionFollower(kafka, start="end") as follower:
            session_id = await publish_task(
                kafka, TaskSubmitted(goal="Email bob@example.com: the build is green")
            )
            watcher = Watcher(follower, session_id)
            await watcher.until("approval_requested")
            approval_id = watcher.progress("approval_requested")[0].detail["approval_id"]
            await stack.stop_one("agent-loop")
            await restart(stack, "agent-loop")
            async with open_channel(stack.target("approval")) as channel:
                approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
                async with asyncio.timeout(30):
                    while True:
                        listed = await approvals.list()
                        if approval_id in {a.id for a in listed}:
                            break
                        await asyncio.sleep(0.2)
                await approvals.resolve(approval_id, "approve", reviewer="alice", comment="ship it")
            result = await watcher.finished()
            watcher.stop()
        done = result.parse(TaskCompleted)
        assert "queued message" in done.answer
        assert watcher.progress("approval_decided")[0].detail["outcome"] == "approved"


async def test_a_rejected_call_reaches_the_model_as_data(stack, kafka: KafkaSettings) -> None:  # type: ignore[no-untyped-def]
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(
            kafka, TaskSubmitted(goal="Email bob@example.com: delete the backups")
        )
        watcher = Watcher(follower, session_id)
        await watcher.until("approval_requested")
        approval_id = watcher.progress("approval_requested")[0].detail["approval_id"]
        async with open_channel(stack.target("approval")) as channel:
            approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
            async with asyncio.timeout(30):
                while True:
                    try:
                        await approvals.resolve(
                            approval_id, "reject", reviewer="bob", comment="never"
                        )
                        break
                    except KeelError:  # not consumed yet
                        await asyncio.sleep(0.2)
        result = await watcher.finished()
        watcher.stop()
    done = result.parse(TaskCompleted)
    assert "never" in done.answer or "reject" in done.answer.lower()


async def test_a_session_over_its_token_budget_stops_with_that_reason(
    stack,
    kafka: KafkaSettings,  # type: ignore[no-untyped-def]
) -> None:
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(
            kafka,
            TaskSubmitted(goal="bench: run 30 no-op steps", max_iterations=40, token_budget=3000),
        )
        watcher = Watcher(follower, session_id)
        result = await watcher.finished()
        watcher.stop()
    failed = result.parse(TaskFailed)
    assert failed.reason == "budget"
    assert "token budget" in failed.error
    assert failed.iterations < 30


async def test_cancel_stops_a_running_session(stack, kafka: KafkaSettings) -> None:  # type: ignore[no-untyped-def]
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(
            kafka,
            TaskSubmitted(
                goal=f"count 20 times slowly: c-{uuid.uuid4().hex[:6]}", max_iterations=30
            ),
        )
        watcher = Watcher(follower, session_id)
        await watcher.until("tool_result", 1)
        async with open_channel(stack.target("agent-loop")) as channel:
            agent = AgentClient(channel, CallOptions(timeout_s=5))
            assert await agent.cancel(session_id, reason="test")
        result = await watcher.finished()
        watcher.stop()
    failed = result.parse(TaskFailed)
    assert failed.reason == "cancelled"
    assert failed.iterations < 20
    assert json.dumps(watcher.progress("cancelled")[0].detail)


async def test_kill_9_between_a_tools_effect_and_its_result_never_makes_the_effect_twice() -> None:
    """The gateway dies after the effect and before its ledger write. The retry (same key, on
    the restarted gateway) must not make the effect again: ``count`` deduplicates by the key,
    so it runs again and answers the count; ``count_once`` cannot, so the gateway waits out
    the intent's deadline and answers that the outcome is unknown."""
    env = {
        "KEEL_TOOL_GATEWAY_INTENT_GRACE_S": "1",
        "KEEL_TOOL_GATEWAY_DEFAULT_TOOL_TIMEOUT_S": "8",
    }
    async with own_stack(env) as (stack, counts, _kafka):
        outcomes = {}
        for tool in ("count", "count_once"):
            name = f"{tool}-{uuid.uuid4().hex[:8]}"
            call = ToolCall(
                id="c1", name=tool, arguments_json=json.dumps({"name": name, "hold_ms": 6000})
            )
            ctx = RequestContext(session_id=f"s-{name}")
            key = f"s-{name}:0:0"
            async with open_channel(stack.target("tool-gateway")) as channel:
                tools = ToolClient(channel, CallOptions(timeout_s=30))
                first = asyncio.create_task(tools.execute(ctx, call, key))
                async with asyncio.timeout(20):
                    while read_count(counts / f"{name}.count") == 0:  # noqa: ASYNC110
                        await asyncio.sleep(0.05)
                stack.kill("tool-gateway")  # the effect happened; its result was not written
                with contextlib.suppress(KeelError):
                    await first
            await restart(stack, "tool-gateway")
            async with open_channel(stack.target("tool-gateway")) as channel:
                tools = ToolClient(channel, CallOptions(timeout_s=30))
                outcomes[tool] = await _retry_until_answered(tools, ctx, call, key)
            assert read_count(counts / f"{name}.count") == 1, f"{tool}: the effect ran twice"
    assert (outcomes["count"].status, outcomes["count"].output) == ("ok", "1")
    assert (outcomes["count_once"].status, outcomes["count_once"].error) == (
        "error",
        OUTCOME_UNKNOWN,
    )


async def _retry_until_answered(
    tools: ToolClient, ctx: RequestContext, call: ToolCall, key: str, timeout_s: float = 40
) -> ToolOutcome:
    """What the agent loop does: an UNAVAILABLE answer (the run may still be going) is waited
    out and the same key sent again."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                return await tools.execute(ctx, call, key)
            except Unavailable:
                await asyncio.sleep(0.5)
