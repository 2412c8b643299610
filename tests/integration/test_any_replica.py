"""Any agent-loop replica answers (issue 15, item 1; ADR 0013), on real processes: two
agent-loop replicas on a broker of their own (the session stack's agent loop would take their
tasks). A session submitted on one replica and run by whichever is answered by both — Get,
StreamEvents (the whole history, or only what follows an event id), Cancel — also after both
replicas restart, and never to another tenant. Before, only the replica that ran a session
knew it, in memory: the other answered NOT_FOUND (or "pending" forever, when it had accepted
the submit), and after a restart nobody knew it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from keel_cli.broker import start_broker, stop_broker
from keel_cli.stack import LocalStack, with_free_ports, with_replicas
from keel_clients import AgentClient, CallOptions, open_channel
from keel_contracts.errors import NotFound
from keel_contracts.events import Envelope
from keel_contracts.sessions import SessionEvent, SessionView, TaskRequest
from keel_contracts.topics import TASK_EVENTS
from keel_core import trust
from keel_core.bus.admin import ensure_topics, wait_for_group
from keel_core.bus.reader import read_key
from keel_core.grpc.tokens import mint_token
from keel_core.settings import KafkaSettings
from tests.integration.chaos import REPO, admin_settings, broker_credentials, broker_env

pytestmark = [pytest.mark.kafka, pytest.mark.stack]

REPLICAS = ("agent-loop", "agent-loop-2")
T = TypeVar("T")


@pytest.fixture(scope="module")
async def replicas() -> AsyncIterator[tuple[LocalStack, KafkaSettings]]:
    """One broker and one stack for the module, with two agent-loop replicas."""
    run_dir = Path(tempfile.mkdtemp(prefix="keel-any-replica-"))
    (run_dir / "counts").mkdir()
    env = broker_env(run_dir)
    bootstrap = await asyncio.to_thread(start_broker, REPO, env)
    kafka = admin_settings(env, bootstrap, connect_timeout_s=30)
    stack = LocalStack(
        run_dir=run_dir,
        kafka_bootstrap=bootstrap,
        specs=with_replicas(with_free_ports(), {"agent-loop": 2}),
        extra_env={"KEEL_TOOL_GATEWAY_TEST_TOOLS_DIR": str(run_dir / "counts")},
        kafka_credentials=broker_credentials(env),
    )
    try:
        await ensure_topics(kafka)
        await stack.start()
        # Both replicas in the group before a session starts: a rebalance after would move
        # the session and run it again from its last checkpoint (another run's events).
        await wait_for_group(kafka, "keel-agent-loop", members=2)
        yield stack, kafka
    finally:
        await stack.stop()
        await asyncio.to_thread(stop_broker, REPO, env)
        shutil.rmtree(run_dir, ignore_errors=True)


def token(stack: LocalStack, tenant: str) -> str:
    material = trust.TrustMaterial(stack.trust_dir)
    return mint_token(material.token_signing_key(), sub="t", tenant=tenant, roles=["submitter"])


async def call(
    stack: LocalStack, instance: str, tenant: str, use: Callable[[AgentClient], Awaitable[T]]
) -> T:
    credentials = stack.credentials(token=token(stack, tenant))
    async with open_channel(stack.target(instance), credentials) as channel:
        return await use(AgentClient(channel, CallOptions(timeout_s=30)))


async def events(
    stack: LocalStack, instance: str, session_id: str, after: str = ""
) -> list[SessionEvent]:
    async def stream(agent: AgentClient) -> list[SessionEvent]:
        return [e async for e in agent.stream_events(session_id, after_event_id=after)]

    return await asyncio.wait_for(call(stack, instance, "acme", stream), 120)


async def status_on(
    stack: LocalStack, instance: str, session_id: str, want: str = ""
) -> SessionView | None:
    """Get, asked again until it says ``want`` (any status when empty): a replica that did not
    accept the session learns of it by following keel.sessions, a fetch behind (ADR 0013)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            view: SessionView | None = await call(
                stack, instance, "acme", lambda a: a.get(session_id)
            )
        except NotFound:
            view = None
        if (view is not None and view.status == (want or view.status)) or (
            time.monotonic() > deadline
        ):
            return view
        await asyncio.sleep(0.2)


async def published_ids(kafka: KafkaSettings, session_id: str) -> list[str]:
    records = await read_key(kafka, TASK_EVENTS, session_id, "test-any-replica")
    return [Envelope.from_bytes(r.value or b"").id for r in records]


async def test_both_replicas_answer_get_and_stream_events_also_after_a_restart(
    replicas: tuple[LocalStack, KafkaSettings],
) -> None:
    stack, kafka = replicas
    task = TaskRequest(goal="What is 3 * 4?", tenant="acme", max_iterations=6)
    session_id = await call(stack, "agent-loop", "acme", lambda a: a.submit(task))
    assert await status_on(stack, "agent-loop-2", session_id) is not None

    # The whole history, from each replica (one of them did not run it), ending by itself.
    histories = await asyncio.gather(*(events(stack, r, session_id) for r in REPLICAS))
    ids = await published_ids(kafka, session_id)
    for history in histories:
        assert [e.event_id for e in history] == ids
        assert history[-1].type == "completed"
    for instance in REPLICAS:
        view = await status_on(stack, instance, session_id, "completed")
        assert view is not None
        assert (view.status, "12" in view.answer) == ("completed", True), instance
    # Resumed after an event id: only the later ones.
    later = await events(stack, "agent-loop-2", session_id, after=ids[1])
    assert [e.event_id for e in later] == ids[2:]
    # Another tenant is told the session does not exist, whatever replica it asks.
    for instance in REPLICAS:
        with pytest.raises(NotFound):
            await call(stack, instance, "globex", lambda a: a.get(session_id))
        with pytest.raises(NotFound):
            await call(stack, instance, "globex", lambda a: a.cancel(session_id))

    # Both replicas restart: the finished session is still answered and replayed.
    deadline = time.monotonic() + 90
    for instance in REPLICAS:
        assert await stack.stop_one(instance) == 0
    for instance in REPLICAS:
        stack.start_one(stack.spec(instance))
    for instance in REPLICAS:
        await stack.wait_healthy(stack.spec(instance), deadline)
    for instance in REPLICAS:
        view = await call(stack, instance, "acme", lambda a: a.get(session_id))
        assert (view.status, "12" in view.answer) == ("completed", True)
        assert [e.event_id for e in await events(stack, instance, session_id)] == ids


async def test_cancel_through_the_replica_that_did_not_accept_it_reaches_the_session(
    replicas: tuple[LocalStack, KafkaSettings],
) -> None:
    stack, _ = replicas
    name = f"any-{uuid.uuid4().hex[:8]}"
    task = TaskRequest(goal=f"count 30 times slowly: {name}", tenant="acme", max_iterations=40)
    session_id = await call(stack, "agent-loop", "acme", lambda a: a.submit(task))
    assert await status_on(stack, "agent-loop-2", session_id) is not None

    async def until_a_tool_ran_then_cancel(agent: AgentClient) -> list[SessionEvent]:
        seen: list[SessionEvent] = []
        async for event in agent.stream_events(session_id):
            seen.append(event)
            if event.type == "tool_result" and [e.type for e in seen].count("tool_result") == 1:
                # Running, as both replicas say (whichever runs it), until the cancel lands.
                for instance in REPLICAS:
                    view = await status_on(stack, instance, session_id, "running")
                    assert view is not None
                    assert view.status == "running", instance
                assert await agent.cancel(session_id, "enough")
        return seen

    seen = await asyncio.wait_for(
        call(stack, "agent-loop-2", "acme", until_a_tool_ran_then_cancel), 120
    )
    assert seen[-1].type == "cancelled"
    assert [e.type for e in seen].count("tool_result") < 30
    view = await status_on(stack, "agent-loop", session_id, "cancelled")
    assert view is not None
    assert view.status == "cancelled"
