"""Submitting tasks: straight to Kafka (``keel.tasks``) or through ``AgentService.Submit``."""

from __future__ import annotations

import uuid

from keel_clients import AgentClient, CallOptions, open_channel
from keel_contracts.events import Envelope, TaskSubmitted
from keel_contracts.sessions import TaskRequest
from keel_contracts.topics import TASKS
from keel_core.bus.producer import EventProducer
from keel_core.settings import KafkaSettings
from keel_core.tracing import new_traceparent


async def publish_task(settings: KafkaSettings, task: TaskSubmitted, session_id: str = "") -> str:
    session_id = session_id or uuid.uuid4().hex
    producer = EventProducer(settings, "cli")
    await producer.start()
    try:
        envelope = Envelope.wrap(
            task, source="keel-cli", session_id=session_id, trace=new_traceparent()
        )
        await producer.publish(TASKS, envelope)
    finally:
        await producer.stop()
    return session_id


async def submit_via_grpc(target: str, task: TaskSubmitted, timeout_s: float = 10.0) -> str:
    request = TaskRequest(
        goal=task.goal,
        agent_profile=task.agent_profile,
        tenant=task.tenant,
        max_iterations=task.max_iterations,
        metadata=task.metadata,
    )
    async with open_channel(target) as channel:
        return await AgentClient(channel, CallOptions(timeout_s=timeout_s)).submit(request)
