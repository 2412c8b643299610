"""Two replicas of every service on a 3-broker Kafka cluster, one of each killed mid-run.

The operator's picture of scaling out: the launcher's cluster (three KRaft nodes, every topic
on all three, two in sync), two processes of each service, callers naming both replicas of
each dependency. Sessions run on both agent-loop replicas, one of them parked on a person's
approval, every LLM call charged to a tenant budget; then one replica of every service and one
broker are SIGKILLed together. Every session must still finish exactly once with the right
answer, every tool effect counted once; both agent-loop replicas (the killed one restarted)
answer Get for every session and the survivor replays the killed one's events; the approval is
decided through the surviving approval replica, once; the budget ledger holds exactly what the
calls settled, and the surviving gateway refuses what passes the limit (issue 15, items 1-4).

One cluster and one stack: this is the slowest test of the suite, so it stays short.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import murmur2

from keel_cli.broker import LocalCluster, kafka_settings, kill_node, topic_env
from keel_cli.stack import SERVICES, LocalStack, with_free_ports, with_replicas
from keel_clients import (
    AgentClient,
    ApprovalClient,
    CallOptions,
    CompletionOptions,
    LLMClient,
    open_channel,
)
from keel_contracts.approvals import ApprovalView
from keel_contracts.chat import ChatMessage, RequestContext
from keel_contracts.errors import NotFound, ResourceExhausted, Unavailable
from keel_contracts.events import (
    ApprovalDecided,
    BudgetReserved,
    BudgetSettled,
    Envelope,
    TaskCompleted,
    TaskSubmitted,
)
from keel_contracts.topics import (
    APPROVAL_DECISIONS,
    LLM_BUDGET,
    OUTBOX,
    TASK_EVENTS,
    TASKS,
    all_specs,
)
from keel_core.bus.admin import ensure_topics
from keel_core.bus.connect import client_options
from keel_core.bus.producer import EventProducer
from keel_core.bus.reader import read_key, read_topic
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent
from keel_llm_gateway.domain.budget_fold import BudgetFold
from keel_llm_gateway.domain.budgets import BudgetLimits, ScopeKind, Spend
from keel_tool_gateway.adapters.tools.count import read_count
from tests.chaos.checks import Session, read_results
from tests.chaos.observe import Observer

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

SESSIONS_PER_PARTITION = 2
STEPS = 6
PARTITIONS = 3
SURVIVOR = "agent-loop"  # the agent-loop replica left running; "agent-loop-2" is killed
KILLED = "agent-loop-2"
BROKER_KILLED = 2  # node 2 of 3: one copy of every partition is lost, two stay in sync
# The sessions' tenant (what Get with the stack's default credentials sees) and its budget:
# room for the whole run, so the run is never refused, and a probe can pass it.
TENANT = "default"
LIMIT = 200_000
LIMITS = BudgetLimits.model_validate({"tenants": {TENANT: {"tokens": LIMIT}}})
REPLICAS_OF_APPROVAL = ("approval", "approval-2")
REVIEWER = "alice"  # the static reviewer token ``t-alice`` names her


def sessions_on_every_partition() -> list[Session]:
    """Session ids chosen so each partition of ``keel.tasks`` holds some: with two agent-loop
    replicas in the group, both then own sessions whatever the assignment."""
    tag = uuid.uuid4().hex[:6]
    chosen: dict[int, list[Session]] = defaultdict(list)
    while any(len(chosen[p]) < SESSIONS_PER_PARTITION for p in range(PARTITIONS)):
        session_id = uuid.uuid4().hex
        partition = (murmur2(session_id.encode()) & 0x7FFFFFFF) % PARTITIONS
        if len(chosen[partition]) < SESSIONS_PER_PARTITION:
            name = f"r{partition}{len(chosen[partition])}-{tag}"
            chosen[partition].append(Session(session_id, name, STEPS))
    return [s for p in range(PARTITIONS) for s in chosen[p]]


async def submit(kafka: KafkaSettings, tasks: dict[str, TaskSubmitted]) -> None:
    producer = EventProducer(kafka, "cluster-test")
    await producer.start()
    try:
        for session_id, task in tasks.items():
            envelope = Envelope.wrap(
                task, source="keel-test", session_id=session_id, trace=new_traceparent()
            )
            await producer.publish(TASKS, envelope)
    finally:
        await producer.stop()


async def known_by(stack: LocalStack, instance: str, session_ids: set[str]) -> dict[str, str]:
    """Session id -> answer (or status, unfinished) for the sessions ``instance`` answers Get
    for (NOT_FOUND left out)."""
    known: dict[str, str] = {}
    async with open_channel(stack.target(instance)) as channel:
        agent = AgentClient(channel, CallOptions(timeout_s=5))
        for session_id in session_ids:
            try:
                view = await agent.get(session_id)
            except NotFound:
                continue
            known[session_id] = view.answer if view.status == "completed" else view.status
    return known


async def answers_on(
    stack: LocalStack, instance: str, want: dict[str, str], timeout_s: float = 30
) -> dict[str, str | None]:
    """What ``instance`` answers Get with for each session, asked again until it is ``want``:
    a replica that wrote no summary of a session learns it a fetch behind (ADR 0013)."""
    deadline = time.monotonic() + timeout_s
    while True:
        known = await known_by(stack, instance, set(want))
        got = {i: known.get(i) for i in want}
        if got == want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.5)


async def replayed_by(stack: LocalStack, instance: str, session_id: str) -> list[tuple[str, str]]:
    """(event id, type) of every event ``instance`` streams for the session, to its end."""
    async with open_channel(stack.target(instance)) as channel, asyncio.timeout(60):
        agent = AgentClient(channel, CallOptions(timeout_s=5))
        return [(e.event_id, e.type) async for e in agent.stream_events(session_id)]


async def replication_of_topics(kafka: KafkaSettings) -> set[int]:
    """The replica counts of every partition of Keel's topics, as the cluster holds them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap, **client_options(kafka))
    await admin.start()
    try:
        described = await admin.describe_topics([s.name for s in all_specs()])
    finally:
        await admin.close()
    return {len(p["replicas"]) for topic in described for p in topic["partitions"]}


async def pending_approval(stack: LocalStack, instance: str, session_id: str) -> ApprovalView:
    """The session's pending approval as replica ``instance`` lists it, once it does."""
    async with open_channel(stack.target(instance)) as channel, asyncio.timeout(120):
        approvals = ApprovalClient(channel, CallOptions(timeout_s=5))
        while True:
            found = [a for a in await approvals.list() if a.session_id == session_id]
            if found:
                return found[0]
            await asyncio.sleep(0.5)


async def approve_on(stack: LocalStack, instance: str, approval_id: str) -> ApprovalView:
    """The reviewer approves through ``instance``. Right after a broker dies her intent may not
    be read back within the replica's wait (UNAVAILABLE): as the docs tell a reviewer, look at
    the approval before acting again (ADR 0014)."""
    credentials = stack.credentials(token=f"t-{REVIEWER}")
    async with open_channel(stack.target(instance), credentials) as channel:
        approvals = ApprovalClient(channel, CallOptions(timeout_s=30))
        async with asyncio.timeout(120):
            while True:
                try:
                    return await approvals.resolve(approval_id, "approve", reviewer=REVIEWER)
                except Unavailable:
                    view = await approvals.get(approval_id)
                    if view is not None and view.status != "pending":
                        return view


async def envelopes_of(kafka: KafkaSettings, topic: str) -> list[Envelope]:
    records = await read_topic(kafka, topic, "cluster-test")
    return [Envelope.from_bytes(r.value) for r in records if r.value]


class Ledger:
    """``keel.llm.budget`` read to its end and folded as every gateway replica folds it."""

    def __init__(self, envelopes: list[Envelope]) -> None:
        self.fold = BudgetFold(LIMITS, hold_ttl_s=900)
        self.reserved: dict[str, BudgetReserved] = {}
        self.settled: list[BudgetSettled] = []
        for envelope in envelopes:
            if envelope.type == BudgetReserved.event_type:
                asked = envelope.parse(BudgetReserved)
                self.reserved[asked.reservation_id] = asked
                keys = tuple((ScopeKind(s.kind), s.name) for s in asked.scopes)
                amount = Spend(asked.tokens, asked.cost_usd)
                self.fold.reserve(asked.reservation_id, asked.tenant, keys, amount, asked.at)
            elif envelope.type == BudgetSettled.event_type:
                done = envelope.parse(BudgetSettled)
                self.settled.append(done)
                actual = Spend(done.tokens, done.cost_usd)
                self.fold.settle(done.reservation_id, done.tenant, actual, done.at)

    @classmethod
    async def read(cls, kafka: KafkaSettings) -> Ledger:
        return cls(await envelopes_of(kafka, LLM_BUDGET))

    def used(self) -> int:
        return self.fold.used(TENANT, ScopeKind.TENANT, TENANT).tokens

    def spent(self) -> int:
        return self.fold.spent(TENANT, ScopeKind.TENANT, TENANT).tokens


async def ask_llm(stack: LocalStack, instance: str, session_id: str, max_tokens: int) -> bool:
    """One budgeted Complete of the tenant; True if it ran, False if the budget refused it."""
    ctx = RequestContext(session_id=session_id, agent_id="cluster-test", tenant=TENANT)
    async with open_channel(stack.target(instance)) as channel:
        llm = LLMClient(channel, CallOptions(timeout_s=30))
        try:
            await llm.complete(
                ctx,
                [ChatMessage(role="user", content="What time is it?")],
                options=CompletionOptions(max_tokens=max_tokens),
            )
        except ResourceExhausted:
            return False
    return True


@pytest.mark.timeout(900)
async def test_sessions_survive_one_replica_of_each_service_and_one_broker_dying(
    kafka_cluster: LocalCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The clients' reconnect errors after the broker kill would bury a failure's report.
    caplog.set_level(logging.CRITICAL, logger="aiokafka")
    kafka = kafka_settings(
        kafka_cluster.bootstrap,
        kafka_cluster.credentials,
        connect_timeout_s=60,
        replication_factor=3,
        min_insync_replicas=2,
    )
    await ensure_topics(kafka)
    assert await replication_of_topics(kafka) == {3}

    counts = tmp_path / "counts"
    counts.mkdir()
    stack = LocalStack(
        run_dir=tmp_path,
        kafka_bootstrap=kafka_cluster.bootstrap,
        specs=with_replicas(with_free_ports(), {s.name: 2 for s in SERVICES}),
        extra_env={
            "KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(counts),
            # Every LLM call reserves and settles on the shared ledger (no cache hit skips it).
            "KEEL_LLM_GATEWAY_BUDGETS": LIMITS.model_dump_json(exclude_defaults=True),
            "KEEL_LLM_GATEWAY_CACHE_ENABLED": "false",
            "KEEL_APPROVAL_REVIEWER_TOKENS": json.dumps({f"t-{REVIEWER}": REVIEWER}),
            **topic_env(3),
        },
        kafka_credentials=kafka_cluster.credentials,
    )
    sessions = sessions_on_every_partition()
    by_id = {s.session_id: s for s in sessions}
    # One session needs a person: send_email under the default policy asks for approval.
    emailing = uuid.uuid4().hex
    tasks = {s.session_id: TaskSubmitted(goal=s.goal, max_iterations=s.steps + 2) for s in sessions}
    tasks[emailing] = TaskSubmitted(goal=f"Email bob@example.com: hello {emailing[:6]}")
    ids = set(tasks)
    observer = Observer(kafka)
    try:
        await stack.start(timeout_s=240)
        await observer.start()
        await submit(kafka, tasks)

        # Both agent-loop replicas run some of the sessions; both approval replicas list the
        # pending approval, whichever owns its partition.
        assert await observer.until(lambda: all(observer.steps[s] >= 1 for s in by_id), 180)
        ran = {name: await known_by(stack, name, set(by_id)) for name in (SURVIVOR, KILLED)}
        assert ran[SURVIVOR], "the first agent-loop replica ran no session"
        assert ran[KILLED], "the second agent-loop replica ran no session"
        listed = [await pending_approval(stack, name, emailing) for name in REPLICAS_OF_APPROVAL]
        assert {(v.id, v.status) for v in listed} == {(listed[0].id, "pending")}

        # Mid-run: one replica of every service (the first of each dependency, which callers
        # used to be pinned to; the second agent loop) and one broker, all at once.
        for spec in SERVICES:
            stack.kill(KILLED if spec.name == "agent-loop" else spec.name)
        kill_node(kafka_cluster.env, BROKER_KILLED)
        finished_before = {e.session_id for e in await read_results(kafka)} & ids
        # The person decides through the approval replica that is left.
        decided = await approve_on(stack, "approval-2", listed[0].id)
        assert decided.status == "approved"

        assert await observer.until(lambda: ids <= observer.results.keys(), 300), (
            f"unfinished: {sorted(ids - observer.results.keys())}\n" + stack.log_tail(SURVIVOR, 40)
        )

        # Every session finished exactly once (one result envelope id), with the right answer;
        # every tool effect counted exactly once.
        results: dict[str, list[Envelope]] = defaultdict(list)
        for envelope in await read_results(kafka):
            if envelope.session_id in ids:
                results[envelope.session_id].append(envelope)
        assert {i: len({e.id for e in results[i]}) for i in ids} == dict.fromkeys(ids, 1)
        answers = {i: results[i][0].parse(TaskCompleted).answer for i in ids}
        expected = {i: s.answer for i, s in by_id.items()} | {emailing: answers[emailing]}
        assert answers == expected
        assert Counter(read_count(counts / f"{s.name}.count") for s in sessions) == Counter(
            {STEPS: len(sessions)}
        )
        in_flight = ids - finished_before
        assert in_flight, "every session had finished before the kill"

        # Approvals: exactly one ApprovalDecided for the approval, the email sent once.
        decisions = [
            e.parse(ApprovalDecided)
            for e in await envelopes_of(kafka, APPROVAL_DECISIONS)
            if e.type == ApprovalDecided.event_type
        ]
        mine = [d for d in decisions if d.approval_id == listed[0].id]
        assert [(d.outcome, d.reviewer) for d in mine] == [("approved", REVIEWER)]
        outbox = await read_topic(kafka, OUTBOX, "cluster-test-outbox")
        assert sum(1 for r in outbox if r.key == emailing.encode()) == 1

        # Any replica answers: the survivor answers Get for every session (those it never ran
        # included) with its answer as soon as the results are out (a session's end marker is
        # written before its result), and so does the killed replica once restarted...
        assert await known_by(stack, SURVIVOR, ids) == answers
        stack.start_one(stack.spec(KILLED))
        await stack.wait_healthy(stack.spec(KILLED), time.monotonic() + 120)
        assert await answers_on(stack, KILLED, answers) == answers
        # ...and the survivor replays the whole history of a session the killed replica ran,
        # as keel.task-events holds it.
        theirs = sorted(ran[KILLED])[0]
        replayed = await replayed_by(stack, SURVIVOR, theirs)
        published = await read_key(kafka, TASK_EVENTS, theirs, "cluster-test-events")
        assert [i for i, _ in replayed] == [
            Envelope.from_bytes(r.value or b"").id for r in published
        ]
        assert replayed[-1][1] == "completed"

        # Budgets: the ledger holds each completed call's settlement once, on a reservation of
        # its own; the fold's spend is exactly their sum; at least one call per model turn of
        # the sessions was settled; what stays held is at most the killed gateway's calls.
        ledger = await Ledger.read(kafka)
        per_reservation = Counter(s.reservation_id for s in ledger.settled)
        assert set(per_reservation) <= set(ledger.reserved)
        assert set(per_reservation.values()) == {1}
        spent = [s for s in ledger.settled if not s.released]
        assert ledger.spent() == sum(s.tokens for s in spent) > 0
        assert len(spent) >= sum(s.steps + 1 for s in sessions)
        assert ledger.fold.held(TENANT) <= len(in_flight)
        # The surviving gateway agrees with that fold to the token: a call that would pass the
        # limit by one is refused, one that fills it exactly runs.
        probe = f"probe-{uuid.uuid4().hex[:8]}"
        assert await ask_llm(stack, "llm-gateway-2", probe, 1)
        ledger = await Ledger.read(kafka)
        prompt = next(
            r.tokens - 1 for r in ledger.reserved.values() if any(s.name == probe for s in r.scopes)
        )
        room = LIMIT - ledger.used()
        assert not await ask_llm(stack, "llm-gateway-2", probe, room - prompt + 1)
        assert await ask_llm(stack, "llm-gateway-2", probe, room - prompt)
    finally:
        await observer.stop()
        await stack.stop()
