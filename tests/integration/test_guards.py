"""Output guards and escalation on the real broker and stack (docs/guards.md). The stack's
agent loop reads ``tests/integration/guards.yaml``; the scripted model's "Summarise: X"
answers "Summary: X", so a goal decides what the answer holds."""

from __future__ import annotations

import asyncio
import json

import pytest

from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack
from keel_cli.tasks import publish_task
from keel_clients import ApprovalClient, CallOptions, open_channel
from keel_contracts.approvals import ApprovalView
from keel_contracts.events import TaskCompleted, TaskFailed, TaskProgress, TaskSubmitted
from keel_core.settings import KafkaSettings
from tests.integration.chaos import Watcher
from tests.integration.helpers import audit_of, run_task

pytestmark = pytest.mark.stack

SECRET = "sk-test-" + "Zq7" * 8


async def pending_approval(stack: LocalStack, approval_id: str) -> ApprovalView:
    """The request as the approval service (and its inbox) shows it, once it has arrived."""
    async with open_channel(stack.target("approval")) as channel:
        approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
        async with asyncio.timeout(30):
            while True:
                listed = {a.id: a for a in await approvals.list()}
                if approval_id in listed:
                    return listed[approval_id]
                await asyncio.sleep(0.2)


async def resolve(stack: LocalStack, approval_id: str, outcome: str, **kw: str) -> None:
    async with open_channel(stack.target("approval")) as channel:
        approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
        await approvals.resolve(approval_id, outcome, reviewer="alice", **kw)  # type: ignore[arg-type]


async def test_a_secret_in_an_answer_is_redacted_in_the_published_result(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    session_id, events = await run_task(kafka, f"Summarise: the deploy key is {SECRET}")

    done = events[-1].parse(TaskCompleted)
    assert done.answer == "Summary: the deploy key is [redacted]"
    # Nor does the model's raw answer leak through the progress of its thought or its end.
    answered = [
        e.parse(TaskProgress)
        for e in events
        if e.type == TaskProgress.event_type
        and e.parse(TaskProgress).kind in ("thought", "completed")
    ]
    assert answered
    assert SECRET not in json.dumps([p.detail for p in answered])
    records = await audit_of(kafka, session_id, {"guard.redact"})
    redacted = next(r for r in records if r.action == "guard.redact")
    assert redacted.details["rule"] == "no-api-keys"


async def test_a_hedging_answer_parks_the_session_until_a_person_approves_it(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    async with SessionFollower(kafka, start="end") as follower:
        session_id = await publish_task(
            kafka, TaskSubmitted(goal="Summarise: I am not sure the build is green")
        )
        watcher = Watcher(follower, session_id)
        await watcher.until("approval_requested")
        approval_id = watcher.progress("approval_requested")[0].detail["approval_id"]

        shown = await pending_approval(stack, approval_id)
        assert shown.tool_name == "keel.publish_answer"
        assert "hedges: 'i am not sure'" in shown.reasoning
        assert "Held by guard" in shown.consequences
        assert json.loads(shown.arguments_json)["answer"] == (
            "Summary: I am not sure the build is green"
        )
        await resolve(stack, approval_id, "approve", comment="fine")
        result = await watcher.finished()
        watcher.stop()

    assert result.parse(TaskCompleted).answer == "Summary: I am not sure the build is green"
    await audit_of(kafka, session_id, {"guard.require_approval"})


async def test_a_reviewer_rewrites_or_rejects_a_held_answer(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    # One follower per watcher: a watcher reads its follower's records and drops the others'.
    async with (
        SessionFollower(kafka, start="end") as first,
        SessionFollower(kafka, start="end") as second,
    ):
        modified_id = await publish_task(kafka, TaskSubmitted(goal="Summarise: I am not sure, A"))
        rejected_id = await publish_task(kafka, TaskSubmitted(goal="Summarise: I am not sure, B"))
        modified, rejected = Watcher(first, modified_id), Watcher(second, rejected_id)
        await modified.until("approval_requested")
        await rejected.until("approval_requested")
        answer = json.dumps({"answer": "A, checked by a person."})
        await resolve(
            stack,
            modified.progress("approval_requested")[0].detail["approval_id"],
            "modify",
            modified_arguments_json=answer,
        )
        await resolve(
            stack,
            rejected.progress("approval_requested")[0].detail["approval_id"],
            "reject",
            comment="ask the release manager",
        )
        rewritten, failed = await modified.finished(), await rejected.finished()
        modified.stop()
        rejected.stop()

    assert rewritten.parse(TaskCompleted).answer == "A, checked by a person."
    error = failed.parse(TaskFailed).error
    assert "rejected by alice: ask the release manager" in error


async def test_a_blocked_tool_call_never_reaches_the_gateway_and_the_model_is_told_why(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    session_id, events = await run_task(kafka, "What is 666 + 1?")

    done = events[-1].parse(TaskCompleted)
    assert "BLOCKED by guard rule no-beast: this number is not computed here" in done.answer
    results = [
        p
        for e in events
        if e.type == TaskProgress.event_type and (p := e.parse(TaskProgress)).kind == "tool_result"
    ]
    assert [(r.detail["status"], r.detail["rule_id"]) for r in results] == [
        ("denied", "guard:no-beast")
    ]
    records = await audit_of(kafka, session_id, {"guard.block", "task.completed"})
    blocked = next(r for r in records if r.action == "guard.block")
    assert (blocked.subject, blocked.details["stage"]) == ("calculator", "tool")
    # The tool gateway never saw the call: no policy decision, no execution.
    assert not {"policy.decision", "tool.execution"} & {r.action for r in records}
