"""Cancelling a plan-mode session parked on its plan cancels the plan, on the real broker:
the node waiting for an approval ends cancelled, the node after it never starts, the plan ends
failed with every node cancelled, and the orchestrator audits the cancel."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack
from keel_cli.tasks import publish_task
from keel_clients import AgentClient, CallOptions, open_channel
from keel_contracts.events import TaskFailed, TaskSubmitted
from keel_core.settings import KafkaSettings
from tests.integration.chaos import Watcher
from tests.integration.helpers import audit_of

pytestmark = pytest.mark.stack


@contextlib.asynccontextmanager
async def watching(kafka: KafkaSettings, session_id: str) -> AsyncIterator[Watcher]:
    """A watcher on a follower of its own (followers are not shared between watchers)."""
    async with SessionFollower(kafka, start="end") as follower:
        watcher = Watcher(follower, session_id)
        try:
            yield watcher
        finally:
            watcher.stop()


async def test_cancelling_a_session_parked_on_its_plan_cancels_the_plan(
    stack: LocalStack, kafka: KafkaSettings
) -> None:
    session_id = f"plan-cancel-{uuid.uuid4().hex[:8]}"
    plan_id = f"{session_id}.plan-1-0"
    async with (
        watching(kafka, session_id) as session,
        watching(kafka, plan_id) as plan,
        watching(kafka, f"{plan_id}.mail") as mail,
        watching(kafka, f"{plan_id}.report") as report,
    ):
        task = TaskSubmitted(goal="Plan mode mail: bob@example.com", agent_profile="planner")
        await publish_task(kafka, task, session_id=session_id)
        await mail.until("approval_requested")  # the plan runs, its first node is parked
        async with open_channel(stack.target("agent-loop")) as channel:
            agent = AgentClient(channel, CallOptions(timeout_s=5))
            assert await agent.cancel(session_id, reason="not needed any more")

        ended = (await session.finished()).parse(TaskFailed)
        node = (await mail.finished()).parse(TaskFailed)
        whole = (await plan.finished()).parse(TaskFailed)
    assert ended.reason == "cancelled"
    assert "waiting_for_plan" in [p.detail.get("to") for p in session.progress("state")]
    assert node.reason == "cancelled"
    assert (whole.reason, whole.error) == ("cancelled", "cancelled: not needed any more")
    assert report.events == []  # the node after the cancelled one never started
    records = await audit_of(kafka, plan_id, {"plan.cancelled"})
    (cancelled,) = [r for r in records if r.action == "plan.cancelled"]
    assert cancelled.actor == f"session:{session_id}"
    assert cancelled.details["stopped"] == [f"{plan_id}.mail"]
