"""Two approval replicas as real processes on a broker of their own (ADR 0014): every replica
sees every request live; quorum votes cast on both at once become one decision; conflicting
actions on both land one decision and the loser is told; a replica killed between its
reviewer's action and the decision has the decision published by the other.

One stack for the module (a broker, the six services and a second approval replica); the
quorum is per approval replica's settings, so the quorum test restarts both replicas with it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from keel_cli.broker import start_broker, stop_broker
from keel_cli.follow import SessionFollower
from keel_cli.stack import LocalStack, with_free_ports, with_replicas
from keel_cli.tasks import publish_task
from keel_clients import ApprovalClient, CallOptions, open_channel
from keel_contracts.approvals import ApprovalView, sign_event
from keel_contracts.errors import FailedPrecondition
from keel_contracts.events import (
    ApprovalDecided,
    ApprovalIntended,
    Envelope,
    TaskCompleted,
    TaskSubmitted,
)
from keel_contracts.topics import APPROVAL_DECISIONS, APPROVAL_INTENTS, OUTBOX
from keel_core.bus import EventProducer
from keel_core.bus.admin import ensure_topics
from keel_core.bus.reader import read_topic
from keel_core.settings import KafkaSettings
from keel_core.trust import TrustMaterial
from tests.integration.chaos import (
    REPO,
    Watcher,
    admin_settings,
    broker_credentials,
    broker_env,
    restart,
)

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

REPLICAS = ("approval", "approval-2")
QUORUM_ENV = "KEEL_APPROVAL_REQUIRED_APPROVALS"
# Reviewers and their static tokens (``t-<name>``): the reviewer is whom the token names.
REVIEWERS = ("alice", "bob")


@pytest.fixture(scope="module")
async def replicated() -> AsyncIterator[tuple[LocalStack, KafkaSettings]]:
    """A broker, the six services and a second approval replica, all of their own: the
    session stack's approval service would otherwise join these replicas' group."""
    run_dir = Path(tempfile.mkdtemp(prefix="keel-approval-replicas-"))
    env = broker_env(run_dir)
    bootstrap = await asyncio.to_thread(start_broker, REPO, env)
    kafka = admin_settings(env, bootstrap, connect_timeout_s=30)
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=bootstrap,
        specs=with_replicas(with_free_ports(), {"approval": 2}),
        # A short grace and sweep, so a dead writer's decision comes within the test's time.
        extra_env={
            "KEEL_APPROVAL_ARBITER_GRACE_S": "1",
            "KEEL_APPROVAL_DEADLINE_CHECK_INTERVAL_S": "0.5",
            "KEEL_APPROVAL_REVIEWER_TOKENS": json.dumps({f"t-{r}": r for r in REVIEWERS}),
        },
        kafka_credentials=broker_credentials(env),
    )
    try:
        await ensure_topics(kafka)
        await stack.start()
        yield stack, kafka
    finally:
        await stack.stop()
        await asyncio.to_thread(stop_broker, REPO, env)
        shutil.rmtree(run_dir, ignore_errors=True)


async def with_quorum(stack: LocalStack, quorum: str) -> None:
    """Both approval replicas running with this quorum setting (restarted if it changes)."""
    if stack.extra_env.get(QUORUM_ENV, "{}") == quorum and all(
        stack.processes[name].poll() is None for name in REPLICAS
    ):
        return
    stack.extra_env[QUORUM_ENV] = quorum
    for name in REPLICAS:
        await stack.stop_one(name)
        await restart(stack, name)


@dataclass
class Asked:
    """A session parked on an approval, and the watcher of its events."""

    session_id: str
    approval_id: str
    watcher: Watcher
    follower: SessionFollower

    async def finished(self) -> Envelope:
        try:
            return await self.watcher.finished()
        finally:
            self.watcher.stop()
            await self.follower.__aexit__(None, None, None)


async def requested(kafka: KafkaSettings, goal: str) -> Asked:
    """Submit a session that asks for an approval."""
    follower = SessionFollower(kafka, start="end")
    await follower.__aenter__()
    session_id = await publish_task(kafka, TaskSubmitted(goal=goal))
    watcher = Watcher(follower, session_id)
    await watcher.until("approval_requested")
    approval_id = watcher.progress("approval_requested")[0].detail["approval_id"]
    return Asked(session_id, approval_id, watcher, follower)


async def listed_on(stack: LocalStack, name: str, approval_id: str) -> ApprovalView:
    """The approval as replica ``name`` lists it, once it does."""
    async with open_channel(stack.target(name)) as channel, asyncio.timeout(30):
        approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
        while True:
            found = [a for a in await approvals.list() if a.id == approval_id]
            if found:
                return found[0]
            await asyncio.sleep(0.2)


async def resolve_on(
    stack: LocalStack, name: str, approval_id: str, outcome: str, reviewer: str
) -> ApprovalView:
    credentials = stack.credentials(token=f"t-{reviewer}")
    async with open_channel(stack.target(name), credentials) as channel:
        approvals = ApprovalClient(channel, CallOptions(timeout_s=15))
        return await approvals.resolve(approval_id, outcome, reviewer=reviewer)  # type: ignore[arg-type]


async def decisions_of(kafka: KafkaSettings, approval_id: str) -> list[ApprovalDecided]:
    records = await read_topic(kafka, APPROVAL_DECISIONS, "test-approval-replicas")
    envelopes = [Envelope.from_bytes(r.value) for r in records if r.value]
    decided = [e.parse(ApprovalDecided) for e in envelopes if e.type == ApprovalDecided.event_type]
    return [d for d in decided if d.approval_id == approval_id]


async def outbox_of(kafka: KafkaSettings, session_id: str) -> int:
    records = await read_topic(kafka, OUTBOX, "test-approval-replicas-outbox")
    return sum(1 for r in records if r.key == session_id.encode())


async def test_a_request_is_listed_by_both_replicas_without_a_restart(
    replicated: tuple[LocalStack, KafkaSettings],
) -> None:
    stack, kafka = replicated
    await with_quorum(stack, "{}")
    asked = await requested(kafka, "Email bob@example.com: hello one")
    views = [await listed_on(stack, name, asked.approval_id) for name in REPLICAS]
    assert {v.status for v in views} == {"pending"}
    await resolve_on(stack, "approval-2", asked.approval_id, "reject", "bob")
    assert (await asked.finished()).parse(TaskCompleted)


async def test_approve_and_reject_on_two_replicas_at_once_land_one_decision(
    replicated: tuple[LocalStack, KafkaSettings],
) -> None:
    stack, kafka = replicated
    await with_quorum(stack, "{}")
    asked = await requested(kafka, "Email bob@example.com: hello two")
    session_id, approval_id, watcher = asked.session_id, asked.approval_id, asked.watcher
    for name in REPLICAS:
        await listed_on(stack, name, approval_id)
    answers = await asyncio.gather(
        resolve_on(stack, "approval", approval_id, "approve", "alice"),
        resolve_on(stack, "approval-2", approval_id, "reject", "bob"),
        return_exceptions=True,
    )
    won = [a for a in answers if isinstance(a, ApprovalView)]
    lost = [a for a in answers if isinstance(a, BaseException)]
    assert len(won) == 1, answers
    assert len(lost) == 1
    assert isinstance(lost[0], FailedPrecondition), lost
    assert f"is already {won[0].status} by" in str(lost[0])
    assert (await asked.finished()).parse(TaskCompleted)
    decided = await decisions_of(kafka, approval_id)
    assert len({d.model_dump_json() for d in decided}) == 1
    assert decided[0].outcome == won[0].status
    assert decided[0].reviewer == ("alice" if won[0].status == "approved" else "bob")
    # The email went out once if the approval won, never if the rejection did.
    assert await outbox_of(kafka, session_id) == (1 if won[0].status == "approved" else 0)
    progress = watcher.progress("approval_decided")
    assert [p.detail["outcome"] for p in progress] == [won[0].status]


async def test_a_replica_killed_mid_decision_has_its_decision_published_by_the_other(
    replicated: tuple[LocalStack, KafkaSettings],
) -> None:
    stack, kafka = replicated
    await with_quorum(stack, "{}")
    asked = await requested(kafka, "Email bob@example.com: hello three")
    other = await requested(kafka, "Email bob@example.com: hello four")
    for approval_id in (asked.approval_id, other.approval_id):
        await listed_on(stack, "approval-2", approval_id)
    stack.kill("approval-2")
    # What approval-2 had just published when it was killed: its reviewer's signed intent,
    # and no decision after it.
    signer = TrustMaterial(stack.trust_dir).approval_signer()
    intent = ApprovalIntended(
        approval_id=asked.approval_id,
        outcome="approve",
        reviewer="carol",
        session_id=asked.session_id,
    )
    envelope = Envelope.wrap(
        sign_event(intent, signer), source="approval", session_id=asked.session_id
    )
    producer = EventProducer(kafka, "approval-2-before-its-death")
    await producer.start()
    try:
        await producer.publish(APPROVAL_INTENTS, envelope, key=asked.session_id)
    finally:
        await producer.stop()
    # The other pending approval is decided through the surviving replica.
    await resolve_on(stack, "approval", other.approval_id, "reject", "bob")
    assert (await asked.finished()).parse(TaskCompleted)
    assert (await other.finished()).parse(TaskCompleted)
    approval_id = asked.approval_id
    decided = await decisions_of(kafka, approval_id)
    assert [(d.outcome, d.reviewer) for d in decided] == [("approved", "carol")]
    await restart(stack, "approval-2")


async def test_quorum_votes_on_two_replicas_at_once_become_one_decision(
    replicated: tuple[LocalStack, KafkaSettings],
) -> None:
    stack, kafka = replicated
    await with_quorum(stack, '{"send_*": 2}')
    asked = await requested(kafka, "Email bob@example.com: hello five")
    session_id, approval_id = asked.session_id, asked.approval_id
    for name in REPLICAS:
        assert (await listed_on(stack, name, approval_id)).required_approvals == 2
    answers = await asyncio.gather(
        resolve_on(stack, "approval", approval_id, "approve", "alice"),
        resolve_on(stack, "approval-2", approval_id, "approve", "bob"),
    )
    assert sorted(a.status for a in answers) == ["approved", "pending"]
    assert (await asked.finished()).parse(TaskCompleted)
    decided = await decisions_of(kafka, approval_id)
    assert len(decided) == 1
    assert decided[0].outcome == "approved"
    assert sorted(decided[0].reviewer.split(",")) == ["alice", "bob"]
    assert await outbox_of(kafka, session_id) == 1
